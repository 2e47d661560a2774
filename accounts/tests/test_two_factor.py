"""TOTP two-factor authentication: enabling it from the page, the login's second step, turning it off."""

from __future__ import annotations

import re

import pytest
from django.test import Client

from accounts import services
from accounts.models import TwoFactorDevice
from accounts.tests.two_factor import code_for, enable_two_factor, fresh_code
from exchange_site.errors import ApplicationError

pytestmark = pytest.mark.django_db
PASSWORD = "a-long-enough-password-1"


@pytest.fixture
def carol(db):
    from tests.factories import UserFactory

    user = UserFactory(username="carol")
    user.set_password(PASSWORD)
    user.raw_password = PASSWORD  # for accounts.tests.two_factor helpers
    user.save()
    return user


def test_enabling_from_the_page_with_a_real_code(carol):
    client = Client()
    client.force_login(carol)
    assert b"is <strong>off</strong>" in client.get("/account/2fa/").content
    assert client.post("/account/2fa/setup/").status_code == 302
    page = client.get("/account/2fa/").content.decode()
    secret = re.search(r'id="two-factor-secret">([A-Z2-7]+)<', page).group(1)
    assert f"secret={secret}" in page and "otpauth://totp/" in page and "<svg" in page
    assert not services.two_factor_enabled(carol)
    # A wrong code leaves it off; the code from the secret turns it on.
    wrong = "123456" if code_for(secret) != "123456" else "654321"
    client.post("/account/2fa/confirm/", {"code": wrong, "password": PASSWORD})
    assert not services.two_factor_enabled(carol)
    assert (
        client.post("/account/2fa/confirm/", {"code": code_for(secret), "password": PASSWORD}).status_code == 200
    )  # shows recovery codes
    assert services.two_factor_enabled(carol)
    assert b"is <strong>on</strong>" in client.get("/account/2fa/").content
    assert secret not in client.get("/account/2fa/").content.decode()  # never shown again


def test_the_secret_is_stored_encrypted(carol):
    secret = enable_two_factor(carol)
    stored = bytes(TwoFactorDevice.objects.get(user=carol).secret_encrypted)
    assert secret.encode() not in stored


def test_login_without_two_factor_is_one_step(carol):
    response = Client().post("/login/", {"username": "carol", "password": PASSWORD})
    assert response.status_code == 302 and response["Location"] != "/login/verify/"


def test_login_asks_for_the_code_when_enabled(carol):
    secret = enable_two_factor(carol)
    client = Client()
    response = client.post("/login/", {"username": "carol", "password": PASSWORD})
    assert response.status_code == 302 and response["Location"] == "/login/verify/"
    # Not logged in yet: pages that need a login still send it to the login page.
    assert client.get("/account/").status_code == 302
    wrong = "000000" if fresh_code(carol, secret) != "000000" else "111111"
    refused = client.post("/login/verify/", {"code": wrong})
    assert refused.status_code == 403 and b"two_factor_code_invalid" in refused.content
    assert client.get("/account/").status_code == 302
    code = fresh_code(carol, secret)
    assert client.post("/login/verify/", {"code": code}).status_code == 302
    assert client.get("/account/").status_code == 200


def test_a_code_is_good_once(carol):
    secret = enable_two_factor(carol)
    code = fresh_code(carol, secret)
    services.two_factor_check(user=carol, code=code)
    with pytest.raises(ApplicationError) as refusal:
        services.two_factor_check(user=carol, code=code)
    assert refusal.value.code == "two_factor_code_invalid"


def test_the_verify_step_without_a_password_step_goes_back_to_login(carol):
    enable_two_factor(carol)
    response = Client().post("/login/verify/", {"code": "123456"})
    assert response.status_code == 302 and response["Location"] == "/login/"


def test_wrong_codes_count_towards_the_lockout(carol, settings):
    secret = enable_two_factor(carol)
    settings.EXCHANGE = {**settings.EXCHANGE, "LOGIN_LOCKOUT_FAILURES": 3}
    client = Client()
    client.post("/login/", {"username": "carol", "password": PASSWORD})
    wrong = "000000" if code_for(secret) not in ("000000",) else "111111"
    for _ in range(3):
        client.post("/login/verify/", {"code": wrong})
    locked = client.post("/login/verify/", {"code": fresh_code(carol, secret)})
    assert locked.status_code == 429 and b"login_locked" in locked.content
    assert client.get("/account/").status_code == 302


def test_disabling_takes_a_code(carol):
    secret = enable_two_factor(carol)
    client = Client()
    client.force_login(carol)
    client.post("/account/2fa/disable/", {"code": ""})
    assert services.two_factor_enabled(carol)
    client.post("/account/2fa/disable/", {"code": fresh_code(carol, secret)})
    assert not services.two_factor_enabled(carol)
    assert not TwoFactorDevice.objects.filter(user=carol).exists()
