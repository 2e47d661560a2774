"""The production profile: ``check --deploy`` reports nothing, and a weak or missing secret stops the start.

Each case runs ``manage.py`` in a subprocess with a production-like
environment: settings are read once per process.  ``check --deploy`` does not
connect to the database (only ``--database`` checks would), so the URLs point
at the test servers but need not be reached.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys

import pytest
from cryptography.fernet import Fernet
from django.conf import settings


def run_manage(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    base = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DJANGO_", "SECURE_")) and key not in ("DATABASE_URL", "REDIS_URL")
    }
    production = {
        "DJANGO_SETTINGS_MODULE": "exchange_site.settings.production",
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(64),
        "SECRETS_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
        "DJANGO_ALLOWED_HOSTS": "exchange.example.com",
        "DATABASE_URL": os.environ["DATABASE_URL"],
        "REDIS_URL": settings.REDIS_URL,
    }
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=settings.BASE_DIR,
        env={**base, **production, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_check_deploy_reports_no_issue_with_the_production_profile():
    result = run_manage("check", "--deploy", "--fail-level", "DEBUG")
    assert result.returncode == 0, result.stdout + result.stderr
    # Nothing reported, and nothing silenced to get there.
    assert "System check identified no issues (0 silenced)." in result.stdout


def test_the_production_profile_trusts_nginx_for_https_and_the_client_address():
    script = (
        "from django.conf import settings as s;"
        "print(s.DEBUG, s.SECURE_PROXY_SSL_HEADER, s.SECURE_SSL_REDIRECT, s.SESSION_COOKIE_SECURE,"
        " s.CSRF_COOKIE_SECURE, s.SECURE_HSTS_SECONDS, s.REST_FRAMEWORK['NUM_PROXIES'], s.ALLOWED_HOSTS)"
    )
    result = run_manage("shell", "--no-imports", "-c", script)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == (
        "False ('HTTP_X_FORWARDED_PROTO', 'https') True True True 31536000 1 ['exchange.example.com']"
    )


@pytest.mark.parametrize("secret", ["", "change-me", "x" * 80])
def test_a_missing_or_weak_secret_key_stops_the_start(secret):
    result = run_manage("check", DJANGO_SECRET_KEY=secret)
    assert result.returncode != 0
    assert "ImproperlyConfigured: DJANGO_SECRET_KEY must be set to a random value of 50 characters" in result.stderr


@pytest.mark.parametrize("keys", ["", "not-a-fernet-key", f"{Fernet.generate_key().decode()},short"])
def test_missing_or_malformed_secrets_encryption_keys_stop_the_start(keys):
    """Secrets at rest need keys of their own in production, not ones derived from DJANGO_SECRET_KEY."""
    result = run_manage("check", SECRETS_ENCRYPTION_KEYS=keys)
    assert result.returncode != 0
    assert "ImproperlyConfigured: SECRETS_ENCRYPTION_KEYS must list one or more Fernet keys" in result.stderr
