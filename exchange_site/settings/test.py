"""Test profile: real PostgreSQL and Redis (embedded under .data/test unless URLs are given)."""

from exchange_site import embedded

# Before base.py reads the environment: start (or find) the throwaway test servers.
embedded.ensure_env(embedded.REPO_ROOT / ".data" / "test", fast=True)

from .base import *  # noqa: E402, F403
from .base import EXCHANGE, REST_FRAMEWORK  # noqa: E402

SECRET_KEY = "test-only-insecure-key"  # noqa: S105
DEBUG = False
# Serve static files from the apps and static/ without collectstatic.
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = True
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
# Rates high enough for the suites that hammer the API; the tests of the limits themselves
# (accounts/tests/test_throttling.py) set low ones with override_settings.
REST_FRAMEWORK = {
    **REST_FRAMEWORK,
    "DEFAULT_THROTTLE_RATES": {"anon": "100000/minute", "user": "100000/minute", "orders": "100000/minute"},
}
EXCHANGE = {
    **EXCHANGE,
    "ENGINE_BLOCK_MS": 20,
    "ENGINE_SWEEP_AFTER_S": 1.0,
    # Tests publish reference prices and place at once: no reuse of a stale copy between them.
    "LIMIT_BAND_REFERENCE_TTL_S": 0,
    "LOGIN_RATE_PER_USERNAME": "100000/minute",
    "LOGIN_RATE_PER_IP": "100000/minute",
    # Tests turn two-factor on and withdraw at once; accounts/tests/test_two_factor_guards.py tests the hold.
    "WITHDRAWAL_HOLD_AFTER_TWO_FACTOR_S": 0,
}
