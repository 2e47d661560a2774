"""Two-factor recovery codes: shown once, stored hashed, single-use, at the login's second step only."""

from __future__ import annotations

import re
from decimal import Decimal

import pytest
from django.contrib.messages import get_messages
from django.db import transaction
from django.test import Client

from accounts import selectors, services
from accounts.models import ApiKey, RecoveryCode, TwoFactorDevice
from accounts.tests.two_factor import code_for, enable_two_factor_with_codes, fresh_code
from exchange_site.errors import ApplicationError
from tests.invariants import money_state
from tests.threads import run_at_once

pytestmark = pytest.mark.django_db
PASSWORD = "a-long-enough-password-1"
CODE_SHAPE = re.compile(r"^[a-z2-9]{4}-[a-z2-9]{4}-[a-z2-9]{4}$")


@pytest.fixture
def carol(btc):
    from tests.factories import UserFactory, fund

    user = UserFactory(username="carol")
    user.set_password(PASSWORD)
    user.raw_password = PASSWORD  # for accounts.tests.two_factor helpers
    user.save()
    fund(user, btc, Decimal(10))
    return user


def logged_in_with(code: str) -> tuple[Client, object]:
    """Both login steps; returns the client and the verify step's response."""
    client = Client()
    first = client.post("/login/", {"username": "carol", "password": PASSWORD})
    assert first.status_code == 302 and first["Location"] == "/login/verify/"
    return client, client.post("/login/verify/", {"code": code})


def is_logged_in(client: Client) -> bool:
    return client.get("/account/").status_code == 200


def test_confirming_shows_ten_codes_once_and_stores_only_hashes(carol):
    client = Client()
    client.force_login(carol)
    client.post("/account/2fa/setup/")
    secret = re.search(r'id="two-factor-secret">([A-Z2-7]+)<', client.get("/account/2fa/").content.decode()).group(1)
    response = client.post("/account/2fa/confirm/", {"code": code_for(secret), "password": PASSWORD})
    assert response.status_code == 200 and response["Cache-Control"].startswith("max-age=0")
    codes = response.context["recovery_codes"]
    assert len(codes) == len(set(codes)) == 10 and all(CODE_SHAPE.match(code) for code in codes)
    html = response.content.decode()
    assert all(code in html for code in codes) and 'id="recovery-codes"' in html
    # Never again: the page shows how many are left, not the codes.
    later = client.get("/account/2fa/").content.decode()
    assert not any(code in later for code in codes)
    assert "<strong>10</strong> of 10 recovery codes left." in later
    stored = list(RecoveryCode.objects.filter(device__user=carol).values_list("code_hash", flat=True))
    assert len(stored) == 10
    for code in codes:
        for form in (code, code.replace("-", "")):
            assert not RecoveryCode.objects.filter(code_hash__contains=form).exists()
    assert all(re.fullmatch(r"[0-9a-f]{64}", value) for value in stored)


def test_login_with_a_recovery_code_then_it_is_spent(carol):
    _, codes = enable_two_factor_with_codes(carol)
    # As typed from paper: upper case, spaces instead of dashes.
    client, response = logged_in_with(codes[3].upper().replace("-", " "))
    assert response.status_code == 302 and is_logged_in(client)
    assert any("recovery code; 9 of 10 remain" in str(m) for m in get_messages(response.wsgi_request))
    assert selectors.recovery_codes_remaining(user=carol) == 9
    assert "<strong>9</strong> of 10" in client.get("/account/2fa/").content.decode()
    # The same code again: refused, not logged in; another code still works.
    again, refused = logged_in_with(codes[3])
    assert refused.status_code == 403 and b"recovery_code_invalid" in refused.content
    assert not is_logged_in(again)
    other, ok = logged_in_with(codes[4])
    assert ok.status_code == 302 and is_logged_in(other)
    assert selectors.recovery_codes_remaining(user=carol) == 8


def test_a_made_up_recovery_code_is_refused_and_counts_towards_the_lockout(carol, settings):
    enable_two_factor_with_codes(carol)
    settings.EXCHANGE = {**settings.EXCHANGE, "LOGIN_LOCKOUT_FAILURES": 3}
    client = Client()
    client.post("/login/", {"username": "carol", "password": PASSWORD})
    for _ in range(2):  # the password step counted as the first attempt
        refused = client.post("/login/verify/", {"code": "aaaa-bbbb-cccc"})
        assert refused.status_code == 403 and b"recovery_code_invalid" in refused.content
    assert client.post("/login/verify/", {"code": "aaaa-bbbb-cccc"}).status_code == 429
    assert not is_logged_in(client)


@pytest.mark.django_db(transaction=True)
def test_concurrent_uses_of_one_code_exactly_one_wins(carol):
    """16 threads on real PostgreSQL present the same code at once: one login, 15 refusals."""
    _, codes = enable_two_factor_with_codes(carol)
    threads_count = 16

    def use(index: int) -> str:
        try:
            services.two_factor_check_login(user=carol, code=codes[0])
        except ApplicationError as refusal:
            return refusal.code
        return "ok"

    results = run_at_once(threads_count, use)
    assert sorted(results) == ["ok"] + ["recovery_code_invalid"] * (threads_count - 1)
    assert RecoveryCode.objects.filter(device__user=carol, used_at__isnull=False).count() == 1


def test_a_recovery_code_does_not_authorise_money_or_two_factor_changes(carol):
    """For getting back in only: withdrawals, withdraw keys, turning 2FA off and new codes take the app's code."""
    secret, codes = enable_two_factor_with_codes(carol)
    client = Client()
    client.force_login(carol)
    before = money_state()
    page = client.post("/account/withdraw/", {"asset": "BTC", "amount": "1", "address": "bc1q", "otp_code": codes[0]})
    assert page.status_code == 403 and page.context["refusal"].code == "two_factor_code_invalid"
    api = client.post(
        "/api/v1/withdrawals",
        {"asset": "BTC", "amount": "1", "address": "bc1q", "otp_code": codes[0]},
        content_type="application/json",
    )
    assert api.status_code == 403 and api.json()["code"] == "two_factor_code_invalid"
    with pytest.raises(ApplicationError) as refusal:
        services.api_key_create(user=carol, scopes=["withdraw"], ip_allowlist=["10.0.0.1"], otp_code=codes[0])
    assert refusal.value.code == "two_factor_code_invalid"
    client.post("/account/2fa/disable/", {"code": codes[0]})
    client.post("/account/2fa/recovery-codes/", {"code": codes[0]})
    assert services.two_factor_enabled(carol)
    assert money_state() == before
    assert not ApiKey.objects.filter(user=carol).exists()
    # None of that spent it (or replaced the set): it still logs in.
    assert selectors.recovery_codes_remaining(user=carol) == 10
    login, ok = logged_in_with(codes[0])
    assert ok.status_code == 302 and is_logged_in(login)
    assert secret  # the app's code was never needed above


def test_regenerating_takes_an_app_code_and_retires_the_old_codes(carol):
    secret, old = enable_two_factor_with_codes(carol)
    services.two_factor_check_login(user=carol, code=old[0])
    client = Client()
    client.force_login(carol)
    for code in ("", "000000" if code_for(secret) != "000000" else "111111"):
        refused = client.post("/account/2fa/recovery-codes/", {"code": code})
        assert refused.status_code == 302 and refused["Location"] == "/account/2fa/"
    assert selectors.recovery_codes_remaining(user=carol) == 9
    response = client.post("/account/2fa/recovery-codes/", {"code": fresh_code(carol, secret)})
    assert response.status_code == 200 and response["Cache-Control"].startswith("max-age=0")
    new = response.context["recovery_codes"]
    assert len(new) == 10 and not set(new) & set(old)
    assert selectors.recovery_codes_remaining(user=carol) == 10
    assert RecoveryCode.objects.filter(device__user=carol).count() == 10
    _, refused = logged_in_with(old[1])
    assert refused.status_code == 403 and b"recovery_code_invalid" in refused.content
    client2, ok = logged_in_with(new[1])
    assert ok.status_code == 302 and is_logged_in(client2)


def test_turning_two_factor_off_deletes_the_codes(carol):
    secret, codes = enable_two_factor_with_codes(carol)
    client = Client()
    client.force_login(carol)
    client.post("/account/2fa/disable/", {"code": fresh_code(carol, secret)})
    assert not TwoFactorDevice.objects.filter(user=carol).exists()
    assert not RecoveryCode.objects.exists()
    # And a new device gets a new set; the old codes mean nothing to it.
    _, new = enable_two_factor_with_codes(carol)
    with pytest.raises(ApplicationError) as refusal:
        services.two_factor_check_login(user=carol, code=codes[0])
    assert refusal.value.code == "recovery_code_invalid"
    assert not set(new) & set(codes)


def test_an_app_code_still_works_at_login(carol):
    secret, _ = enable_two_factor_with_codes(carol)
    client, response = logged_in_with(fresh_code(carol, secret))
    assert response.status_code == 302 and is_logged_in(client)
    assert selectors.recovery_codes_remaining(user=carol) == 10


def test_an_operator_sees_the_codes_left_and_resetting_the_device_deletes_them(admin_client, carol):
    _, codes = enable_two_factor_with_codes(carol)
    services.two_factor_check_login(user=carol, code=codes[0])
    listing = admin_client.get("/admin/accounts/twofactordevice/")
    assert listing.status_code == 200 and '<td class="field-recovery_codes_left">9</td>' in listing.content.decode()
    device = TwoFactorDevice.objects.get(user=carol)
    deleted = admin_client.post(f"/admin/accounts/twofactordevice/{device.pk}/delete/", {"post": "yes"})
    assert deleted.status_code == 302
    assert not services.two_factor_enabled(carol) and not RecoveryCode.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_racing_regenerations_leave_one_set_of_ten(carol):
    """8 threads replace the codes at once (as two confirmations or two regenerations could): 10 codes remain,
    all from one set, not 10 per thread side by side."""
    enable_two_factor_with_codes(carol)
    device = TwoFactorDevice.objects.get(user=carol)

    def regenerate(index: int) -> list[str]:
        with transaction.atomic():
            return services._replace_recovery_codes(device)

    shown = run_at_once(8, regenerate)
    assert len(shown) == 8
    assert RecoveryCode.objects.filter(device=device).count() == 10
    # The set that survived is the one some thread showed last; its codes work.
    assert sum(logs_in(carol, codes[0]) for codes in shown) == 1


def logs_in(user, code: str) -> bool:
    try:
        services.two_factor_check_login(user=user, code=code)
    except ApplicationError:
        return False
    return True
