"""``deploy/healthcheck.py`` against gunicorn running the production profile, as the containers probe it.

The production profile refuses unknown hosts (400) and redirects plain HTTP
(301); the probe talks to the process directly, so it must present itself as
nginx would, and the health paths must not be redirected.
"""

from __future__ import annotations

import http.client
import importlib.util
import os
import secrets
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from django.conf import settings

from tests.stack import free_port

ROOT = Path(settings.BASE_DIR)
HOST = "exchange.example.com"


def production_env(**extra: str) -> dict[str, str]:
    return {
        **{key: value for key, value in os.environ.items() if not key.startswith("DJANGO_")},
        "DJANGO_SETTINGS_MODULE": "exchange_site.settings.production",
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(64),
        "SECRETS_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
        "DJANGO_ALLOWED_HOSTS": f"{HOST},.example.org",
        "REDIS_URL": settings.REDIS_URL,
        **extra,
    }


@pytest.fixture(scope="module")
def gunicorn_url(tmp_path_factory):
    port = free_port()
    log_path = tmp_path_factory.mktemp("gunicorn") / "gunicorn.log"
    # Redis unreachable: /readyz must answer 503 without waiting on a database or an engine.
    env = production_env(
        WEB_BIND=f"127.0.0.1:{port}", WEB_CONCURRENCY="1", WEB_THREADS="2", REDIS_URL="redis://127.0.0.1:1/0"
    )
    gunicorn = str(Path(sys.executable).with_name("gunicorn"))
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [gunicorn, "exchange_site.wsgi:application", "-c", "exchange_site/gunicorn_conf.py"],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 30
        while True:
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", port)) == 0:
                    break
            assert process.poll() is None, log_path.read_text()
            assert time.monotonic() < deadline, "gunicorn did not start"
            time.sleep(0.1)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(10)


def probe(url: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "deploy/healthcheck.py", url],
        cwd=ROOT,
        env=production_env(),
        capture_output=True,
        text=True,
        timeout=30,
    )


def raw_get(base: str, path: str, headers: dict[str, str]) -> http.client.HTTPResponse:
    connection = http.client.HTTPConnection(base.removeprefix("http://"), timeout=10)
    connection.request("GET", path, headers=headers)
    return connection.getresponse()


def test_the_probe_passes_on_a_live_process(gunicorn_url):
    result = probe(f"{gunicorn_url}/healthz")
    assert result.returncode == 0, result.stdout
    assert result.stdout.startswith('200 {"status": "alive"}')


def test_the_probe_fails_and_says_why_when_the_process_is_not_ready(gunicorn_url):
    result = probe(f"{gunicorn_url}/readyz")
    assert result.returncode == 1
    assert result.stdout.startswith("503 ")
    assert "Redis did not answer PING" in result.stdout


def test_the_probe_fails_when_nothing_answers():
    result = probe(f"http://127.0.0.1:{free_port()}/healthz")
    assert result.returncode == 1
    assert result.stdout.startswith("no answer from")


def test_without_the_probe_headers_production_refuses_the_host_and_redirects_plain_http(gunicorn_url):
    assert raw_get(gunicorn_url, "/healthz", {}).status == 400  # Host 127.0.0.1 is not allowed
    assert raw_get(gunicorn_url, "/healthz", {"Host": HOST}).status == 200  # health paths: no redirect
    redirected = raw_get(gunicorn_url, "/api/v1/markets", {"Host": HOST})
    assert redirected.status == 301
    assert redirected.getheader("Location") == f"https://{HOST}/api/v1/markets"


def test_the_probe_host_is_the_first_allowed_name_and_never_a_wildcard():
    spec = importlib.util.spec_from_file_location("healthcheck", ROOT / "deploy" / "healthcheck.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    probe_host = module.probe_host
    assert probe_host("exchange.example.com,api.example.com") == "exchange.example.com"
    assert probe_host(" .example.com") == "example.com"
    assert probe_host("*,exchange.example.com") == "exchange.example.com"
    assert probe_host("*") == "localhost"
    assert probe_host("") == "localhost"
