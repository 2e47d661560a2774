"""Test helpers for two-factor authentication: real TOTP codes computed from the stored secret."""

from __future__ import annotations

import time

import pyotp

from accounts import services
from accounts.models import TwoFactorDevice, User

# The password tests.factories.UserFactory gives a user unless the test sets another.
FACTORY_PASSWORD = "pass"


def code_for(secret: str, *, offset: int = 0) -> str:
    """The code an authenticator app shows now (``offset`` steps of 30 s later or earlier)."""
    return pyotp.TOTP(secret).generate_otp(int(time.time()) // services.TOTP_STEP_SECONDS + offset)


def _password_of(user: User) -> str:
    # Tests that set their own password keep it on the user object for us.
    return getattr(user, "raw_password", FACTORY_PASSWORD)


def enable_two_factor(user: User) -> str:
    """Turn two-factor authentication on for ``user`` as the pages do; return the secret."""
    _, secret = services.two_factor_begin(user=user)
    services.two_factor_confirm(user=user, code=code_for(secret), password=_password_of(user))
    return secret


def fresh_code(user: User, secret: str) -> str:
    """A code that has not been used yet: as if the next 30 s step had come (each code is good once)."""
    TwoFactorDevice.objects.filter(user=user).update(last_step=0)
    return code_for(secret)


def enable_two_factor_with_codes(user: User) -> tuple[str, list[str]]:
    """Turn two-factor authentication on; return the secret and the recovery codes shown once."""
    _, secret = services.two_factor_begin(user=user)
    return secret, services.two_factor_confirm(user=user, code=code_for(secret), password=_password_of(user))
