"""Secrets at rest: API-key and two-factor secrets are encrypted with keys from the environment, and rotate.

A rotation goes: new key first in ``SECRETS_ENCRYPTION_KEYS`` (every key
decrypts, the first encrypts), ``manage.py reencrypt_secrets``, old key
removed.  Nothing has to be reissued, and ``SECRET_KEY`` can change once the
secrets are under configured keys.
"""

from __future__ import annotations

import io

import pytest
from cryptography.fernet import Fernet, InvalidToken
from django.core.management import call_command
from django.test import override_settings

from accounts import services
from accounts.models import ApiKey, TwoFactorDevice
from accounts.tests.two_factor import enable_two_factor

OLD, NEW = Fernet.generate_key().decode(), Fernet.generate_key().decode()


def stored_key_secret(api_key: ApiKey) -> str:
    return services.api_key_secret(ApiKey.objects.get(pk=api_key.pk))


def stored_totp_secret(user) -> str:
    return services._totp_secret(TwoFactorDevice.objects.get(user=user))


def test_a_configured_key_encrypts_and_the_stored_bytes_hold_no_secret(alice):
    with override_settings(SECRETS_ENCRYPTION_KEYS=[NEW]):
        api_key, secret = services.api_key_create(user=alice)
        raw = bytes(ApiKey.objects.get(pk=api_key.pk).secret_encrypted)
        assert secret.encode() not in raw
        assert Fernet(NEW).decrypt(raw).decode() == secret  # encrypted under the configured key, not a derived one


def test_rotation_new_key_first_reencrypt_then_drop_the_old_one(alice):
    with override_settings(SECRETS_ENCRYPTION_KEYS=[OLD]):
        api_key, key_secret = services.api_key_create(user=alice)
        totp_secret = enable_two_factor(alice)
    with override_settings(SECRETS_ENCRYPTION_KEYS=[NEW, OLD]):
        assert stored_key_secret(api_key) == key_secret  # the old key still decrypts
        out = io.StringIO()
        call_command("reencrypt_secrets", stdout=out)
        assert "Re-encrypted 1 API key secrets and 1 two-factor secrets" in out.getvalue()
        assert "api_keys: 1/1" in out.getvalue()
    with override_settings(SECRETS_ENCRYPTION_KEYS=[NEW]):
        assert stored_key_secret(api_key) == key_secret
        assert stored_totp_secret(alice) == totp_secret
    with override_settings(SECRETS_ENCRYPTION_KEYS=[OLD]), pytest.raises(InvalidToken):
        stored_key_secret(api_key)  # nothing is left under the old key


def test_secrets_made_before_keys_were_configured_move_under_them_and_survive_a_new_secret_key(alice):
    api_key, key_secret = services.api_key_create(user=alice)  # no keys configured: derived from SECRET_KEY
    with override_settings(SECRETS_ENCRYPTION_KEYS=[NEW]):
        assert stored_key_secret(api_key) == key_secret
        call_command("reencrypt_secrets", stdout=io.StringIO())
    with override_settings(SECRETS_ENCRYPTION_KEYS=[NEW], SECRET_KEY="another-secret-key-entirely"):
        assert stored_key_secret(api_key) == key_secret
    unconfigured = override_settings(SECRETS_ENCRYPTION_KEYS=[], SECRET_KEY="another-secret-key-entirely")
    with unconfigured, pytest.raises(InvalidToken):
        stored_key_secret(api_key)  # and it really was the configured key that kept it readable


def test_reencrypting_twice_changes_nothing_readable(alice):
    api_key, key_secret = services.api_key_create(user=alice)
    with override_settings(SECRETS_ENCRYPTION_KEYS=[NEW]):
        for _ in range(2):
            call_command("reencrypt_secrets", stdout=io.StringIO())
        assert stored_key_secret(api_key) == key_secret
