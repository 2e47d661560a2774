"""The withdrawal page (/account/withdraw/): a form over ``services.withdrawal_request``, no JavaScript needed."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.contrib.messages import get_messages
from django.test import Client

from accounts.models import Balance, TwoFactorDevice
from accounts.tests.two_factor import code_for, enable_two_factor, fresh_code
from tests.invariants import assert_exchange_invariants, money_state

pytestmark = pytest.mark.django_db
D = Decimal
URL = "/account/withdraw/"


@pytest.fixture
def page(alice) -> Client:
    client = Client()
    client.force_login(alice)
    return client


def btc_available(user) -> Decimal:
    return Balance.objects.get(user=user, asset__symbol="BTC").available


def flash(response) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


def test_the_form_lists_your_assets_with_what_is_available(page, alice):
    response = page.get(URL)
    assert response.status_code == 200
    html = response.content.decode()
    assert '<option value="BTC">BTC (10 available)</option>' in html
    assert '<option value="USDT">USDT (100000 available)</option>' in html
    for field in ("asset", "amount", "address", "otp_code"):
        assert f'<label for="id_{field}">' in html and f'id="id_{field}"' in html
    assert 'name="csrfmiddlewaretoken"' in html
    # Two-factor is off: the page says so before any attempt, with the way to turn it on.
    assert 'id="withdraw-needs-2fa"' in html and 'href="/account/2fa/"' in html


def test_a_withdrawal_with_a_real_code(page, alice):
    secret = enable_two_factor(alice)
    data = {"asset": "BTC", "amount": "1.25", "address": "bc1qpage", "otp_code": fresh_code(alice, secret)}
    response = page.post(URL, data)
    assert response.status_code == 302 and response["Location"] == URL
    assert flash(response) == ["Withdrawal of 1.25 BTC to bc1qpage sent."]
    assert btc_available(alice) == D("8.75")
    shown = page.get(URL)
    assert '<option value="BTC">BTC (8.75 available)</option>' in shown.content.decode()
    assert [(w.asset.symbol, w.amount, w.address) for w in shown.context["withdrawals"]] == [
        ("BTC", D("1.25"), "bc1qpage")
    ]
    account = page.get("/account/").content.decode()
    assert "bc1qpage" in account and "1.25" in account and 'href="/account/withdraw/"' in account
    assert_exchange_invariants()


def test_the_same_code_does_not_pay_twice(page, alice):
    """A code is good once per 30 s step: a resubmitted form (double click, back button) pays once."""
    secret = enable_two_factor(alice)
    data = {"asset": "BTC", "amount": "1", "address": "bc1qpage", "otp_code": fresh_code(alice, secret)}
    assert page.post(URL, data).status_code == 302
    before = money_state()
    again = page.post(URL, data)
    assert again.status_code == 403 and again.context["refusal"].code == "two_factor_code_invalid"
    assert money_state() == before and btc_available(alice) == D(9)


def test_without_two_factor_the_refusal_links_to_turning_it_on(page, alice):
    before = money_state()
    response = page.post(URL, {"asset": "BTC", "amount": "1", "address": "bc1qpage", "otp_code": "123456"})
    assert response.status_code == 403
    html = response.content.decode()
    assert "This needs two-factor authentication: turn it on in your account first. (two_factor_required)" in html
    assert 'data-code="two_factor_required"' in html and ">Turn on two-factor authentication</a>" in html
    assert money_state() == before


@pytest.mark.parametrize(
    ("amount", "otp", "status", "code", "message"),
    [
        ("10.00000001", "good", 400, "insufficient_funds", "Not enough BTC available to withdraw 10.00000001."),
        ("1", "wrong", 403, "two_factor_code_invalid", "That code is not valid (or was already used)"),
        ("1", "", 403, "two_factor_code_required", "Enter the 6-digit code from your authenticator app."),
        ("-1", "good", 400, "invalid_amount", "The amount must be a positive number, not -1."),
        ("0.000000001", "good", 400, "invalid_amount", "is not a valid amount of BTC (at most 8 decimals)."),
    ],
)
def test_refusals_show_the_service_message_and_change_nothing(page, alice, amount, otp, status, code, message):
    secret = enable_two_factor(alice)
    good = fresh_code(alice, secret)
    otp = {"good": good, "wrong": "000000" if good != "000000" else "111111", "": ""}[otp]
    before = money_state()
    response = page.post(URL, {"asset": "BTC", "amount": amount, "address": "bc1qpage", "otp_code": otp})
    assert response.status_code == status
    assert response.context["refusal"].code == code
    html = response.content.decode()
    assert message in html and f"({code})" in html and 'role="alert"' in html
    # The form keeps what was typed, except the code (good once): fix the amount and send again.
    assert 'value="bc1qpage"' in html and f'value="{good}"' not in html
    assert money_state() == before


def test_insufficient_funds_do_not_spend_the_code(page, alice):
    """Refused before the code is checked, so the same code still works once the amount is fixed."""
    secret = enable_two_factor(alice)
    code = fresh_code(alice, secret)
    step = TwoFactorDevice.objects.get(user=alice).last_step
    data = {"asset": "BTC", "amount": "11", "address": "bc1qpage", "otp_code": code}
    assert page.post(URL, data).status_code == 400
    assert TwoFactorDevice.objects.get(user=alice).last_step == step
    assert page.post(URL, {**data, "amount": "2"}).status_code == 302
    assert btc_available(alice) == D(8)


@pytest.mark.parametrize(
    "data",
    [
        {"asset": "DOGE", "amount": "1", "address": "bc1qpage"},  # not one of her assets
        {"asset": "BTC", "amount": "abc", "address": "bc1qpage"},
        {"asset": "BTC", "amount": "NaN", "address": "bc1qpage"},
        {"asset": "BTC", "amount": "1", "address": ""},
        {"asset": "BTC", "amount": "1", "address": "x" * 129},
    ],
)
def test_malformed_forms_are_400_and_change_nothing(page, alice, data):
    secret = enable_two_factor(alice)
    before = money_state()
    response = page.post(URL, {**data, "otp_code": fresh_code(alice, secret)})
    assert response.status_code == 400 and response.context["form"].errors
    assert money_state() == before


def test_a_bad_address_shows_the_service_message(page, alice):
    secret = enable_two_factor(alice)
    before = money_state()
    response = page.post(URL, {"asset": "BTC", "amount": "1", "address": "bad address!", "otp_code": code_for(secret)})
    assert response.status_code == 400 and response.context["refusal"].code == "invalid_address"
    assert "The address must be 1-128 letters, digits or &#x27;:._-&#x27;." in response.content.decode()
    assert money_state() == before


def test_anonymous_users_are_sent_to_log_in(alice):
    before = money_state()
    for response in (Client().get(URL), Client().post(URL, {"asset": "BTC", "amount": "1", "address": "x1"})):
        assert response.status_code == 302 and response["Location"] == f"/login/?next={URL}"
    assert money_state() == before
