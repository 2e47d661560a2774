"""What a stolen session (or one who guesses) cannot do with two-factor authentication.

- Turning two-factor on takes the account's password as well as a code, and a
  newly turned-on device holds withdrawals for ``WITHDRAWAL_HOLD_AFTER_TWO_FACTOR_S``:
  a thief with the session (and even the password) cannot pick the phone and
  withdraw at once.
- Wrong codes are counted on every page and endpoint that takes one, before
  the code is checked: at most ``TWO_FACTOR_MAX_FAILURES`` are checked per
  lockout period, however many requests race.
- Codes and signatures in non-ASCII text are refused as wrong, never a 500.
"""

from __future__ import annotations

from decimal import Decimal

import pyotp
import pytest
from django.test import override_settings
from rest_framework.test import APIClient

from accounts import services
from accounts.models import Balance, TwoFactorDevice
from accounts.tests.two_factor import code_for, enable_two_factor, fresh_code
from exchange_site.errors import ApplicationError
from tests import figures
from tests.invariants import money_state
from tests.signing import signed_request
from tests.threads import run_at_once

pytestmark = pytest.mark.django_db
DAY = 86400
WITHDRAWAL = {"asset": "BTC", "amount": "1", "address": "thief-wallet"}


def session(user) -> APIClient:
    client = APIClient()
    client.force_login(user)
    return client


def error_code(response) -> str:
    return response.json()["code"]


def test_a_stolen_session_cannot_turn_two_factor_on_without_the_password(alice):
    thief = session(alice)
    thief.post("/account/2fa/setup/")
    secret = thief.get("/account/2fa/").context["secret"]
    page = thief.post("/account/2fa/confirm/", {"code": code_for(secret), "password": "a guess"})
    assert page.status_code == 302
    assert not services.two_factor_enabled(alice)
    before = money_state()
    refused = thief.post("/api/v1/withdrawals", {**WITHDRAWAL, "otp_code": code_for(secret)}, format="json")
    assert (refused.status_code, error_code(refused)) == (403, "two_factor_required")
    assert money_state() == before


@override_settings(EXCHANGE={**services.settings.EXCHANGE, "WITHDRAWAL_HOLD_AFTER_TWO_FACTOR_S": DAY})
def test_a_device_turned_on_just_now_holds_withdrawals_by_session_and_by_key(alice):
    thief = session(alice)  # with the password too: the hold is what is left between them and the money
    secret = enable_two_factor(alice)
    before = money_state()
    held = thief.post("/api/v1/withdrawals", {**WITHDRAWAL, "otp_code": fresh_code(alice, secret)}, format="json")
    assert (held.status_code, error_code(held)) == (403, "withdrawal_hold")
    assert "Withdrawals open" in held.json()["message"] and held.json()["details"]["opens_at"]
    key, key_secret = services.api_key_create(
        user=alice, scopes=["read", "withdraw"], ip_allowlist=["127.0.0.1"], otp_code=fresh_code(alice, secret)
    )
    by_key = signed_request(APIClient(), "POST", "/api/v1/withdrawals", key=key.key, secret=key_secret, data=WITHDRAWAL)
    assert (by_key.status_code, error_code(by_key)) == (403, "withdrawal_hold")
    assert money_state() == before
    # A day later the same request goes through.
    TwoFactorDevice.objects.filter(user=alice).update(
        confirmed_at=services.timezone.now() - services.dt.timedelta(days=1)
    )
    paid = thief.post("/api/v1/withdrawals", {**WITHDRAWAL, "otp_code": fresh_code(alice, secret)}, format="json")
    assert paid.status_code == 201


@pytest.mark.parametrize(
    ("path", "field"),
    [("/account/2fa/disable/", "code"), ("/account/2fa/recovery-codes/", "code"), ("/api/v1/withdrawals", "otp_code")],
)
def test_wrong_codes_are_counted_on_every_page_and_endpoint(alice, path, field):
    secret = enable_two_factor(alice)
    client = session(alice)
    right = fresh_code(alice, secret)
    wrong = next(c for c in (f"{n:06d}" for n in range(1_000_000)) if c != right)
    limit = services.settings.EXCHANGE["TWO_FACTOR_MAX_FAILURES"]
    body_format = "json" if path.startswith("/api/") else None  # the pages take form posts
    for _ in range(limit):
        client.post(path, {**WITHDRAWAL, field: wrong}, format=body_format)
    locked = client.post(path, {**WITHDRAWAL, field: right}, format=body_format)  # even the right code, now
    if path.startswith("/api/"):
        assert (locked.status_code, error_code(locked)) == (429, "two_factor_locked")
    assert services.two_factor_enabled(alice)
    with pytest.raises(ApplicationError) as refusal:
        services.two_factor_check(user=alice, code=right)
    assert refusal.value.code == "two_factor_locked" and refusal.value.details["retry_after"] > 0


@pytest.mark.django_db(transaction=True)
def test_fifty_racing_guesses_check_at_most_the_limit(alice):
    """50 threads (each holds a PostgreSQL connection; the test server allows 100) guess at once."""
    secret = enable_two_factor(alice)
    right = {pyotp.TOTP(secret).now()}
    guesses = [f"{n:06d}" for n in range(60) if f"{n:06d}" not in right][:50]
    threads = len(guesses)

    def guess(index: int) -> str:
        try:
            services.two_factor_check(user=alice, code=guesses[index])
        except ApplicationError as refusal:
            return refusal.code
        return "accepted"

    outcomes = run_at_once(threads, guess)
    limit = services.settings.EXCHANGE["TWO_FACTOR_MAX_FAILURES"]
    assert outcomes.count("two_factor_code_invalid") == limit
    assert outcomes.count("two_factor_locked") == threads - limit
    figures.report("two_factor_racing_guesses", {"threads": threads, "checked": limit, "locked": threads - limit})


def test_non_ascii_codes_and_signatures_are_wrong_not_a_server_error(alice):
    secret = enable_two_factor(alice)
    client = session(alice)
    fullwidth = "".join(chr(0xFF10 + int(d)) for d in fresh_code(alice, secret))  # FULLWIDTH DIGIT ZERO + d
    refused = client.post("/api/v1/withdrawals", {**WITHDRAWAL, "otp_code": fullwidth}, format="json")
    assert (refused.status_code, error_code(refused)) == (403, "two_factor_code_invalid")
    key, _ = services.api_key_create(user=alice)
    forged = APIClient().get(
        "/api/v1/account/balances",
        HTTP_X_API_KEY=key.key,
        HTTP_X_TIMESTAMP=str(int(services.time.time() * 1000)),
        HTTP_X_SIGNATURE="é" * 64,
    )
    assert forged.status_code == 401
    assert Balance.objects.get(user=alice, asset__symbol="BTC").available == Decimal(10)


def test_the_admin_login_is_the_sites_login(alice, client):
    """Django's admin form checks only a password: operators sign in through ours (throttles, lockout, 2FA)."""
    to_login = client.get("/admin/login/?next=/admin/accounts/")
    assert to_login.status_code == 302 and to_login["Location"] == "/login/?next=/admin/accounts/"
    operator = services.User.objects.create_user("operator", password="operator-password-1", is_staff=True)
    operator.raw_password = "operator-password-1"
    enable_two_factor(operator)
    posted = client.post("/admin/login/", {"username": "operator", "password": "operator-password-1"})
    assert posted.status_code == 302 and "_auth_user_id" not in client.session  # the password alone logs nobody in
    signed_in = client.post("/login/?next=/admin/", {"username": "operator", "password": "operator-password-1"})
    assert signed_in["Location"].startswith("/login/verify/")  # the two-factor step comes first
    assert "_auth_user_id" not in client.session
    client.force_login(alice)  # a trader is told, not sent round in circles
    refused = client.get("/admin/login/?next=/admin/")
    assert refused.status_code == 403 and b"not an operator account" in refused.content
