"""POST/GET /api/v1/withdrawals: a user's own withdrawals, through the ledger's withdrawal service."""

from __future__ import annotations

from decimal import Decimal

import pytest
from rest_framework.test import APIClient

from accounts import services
from accounts.models import Balance
from accounts.tests.two_factor import enable_two_factor, fresh_code
from tests.invariants import assert_exchange_invariants, money_state
from tests.signing import signed_request

pytestmark = pytest.mark.django_db
D = Decimal


def assert_error(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.content
    body = response.json()
    assert set(body) == {"code", "message", "details"} and body["code"] == code and body["message"]
    return body


@pytest.fixture
def session(alice):
    client = APIClient()
    client.force_login(alice)
    return client


def btc_available(user) -> Decimal:
    return Balance.objects.get(user=user, asset__symbol="BTC").available


def test_a_session_without_two_factor_cannot_withdraw(session, alice, market):
    before = money_state()
    response = session.post("/api/v1/withdrawals", {"asset": "BTC", "amount": "1", "address": "bc1qxyz"}, format="json")
    assert_error(response, 403, "two_factor_required")
    assert money_state() == before


def test_a_session_with_two_factor_withdraws_with_a_code(session, alice, market):
    secret = enable_two_factor(alice)
    data = {"asset": "BTC", "amount": "1.5", "address": "bc1qxyz"}
    assert_error(session.post("/api/v1/withdrawals", data, format="json"), 403, "two_factor_code_required")
    response = session.post("/api/v1/withdrawals", {**data, "otp_code": fresh_code(alice, secret)}, format="json")
    assert response.status_code == 201, response.content
    assert response.json() == {"asset": "BTC", "available": "8.5", "locked": "0"}
    assert btc_available(alice) == D("8.5")
    listed = session.get("/api/v1/withdrawals").json()
    assert [(w["asset"], w["amount"], w["address"]) for w in listed] == [("BTC", "1.5", "bc1qxyz")]
    assert_exchange_invariants()


def test_insufficient_funds_change_nothing(session, alice, market):
    secret = enable_two_factor(alice)
    before = money_state()
    data = {"asset": "BTC", "amount": "10.00000001", "address": "bc1qxyz", "otp_code": fresh_code(alice, secret)}
    body = assert_error(session.post("/api/v1/withdrawals", data, format="json"), 400, "insufficient_funds")
    assert body["details"]["asset"] == "BTC"
    assert money_state() == before
    assert session.get("/api/v1/withdrawals").json() == []


@pytest.mark.parametrize(
    ("data", "status", "code"),
    [
        ({"asset": "DOGE", "amount": "1", "address": "x1"}, 404, "unknown_asset"),
        ({"asset": "BTC", "amount": "-1", "address": "x1"}, 400, "invalid_amount"),
        ({"asset": "BTC", "amount": "0.000000001", "address": "x1"}, 400, "invalid_amount"),
        ({"asset": "BTC", "amount": "1", "address": "bad address!"}, 400, "invalid_address"),
        ({"asset": "BTC", "amount": "1"}, 400, "invalid_request"),
        ({"asset": "BTC", "amount": "abc", "address": "x1"}, 400, "invalid_request"),
    ],
)
def test_bad_requests_are_refused(session, alice, market, data, status, code):
    secret = enable_two_factor(alice)
    before = money_state()
    response = session.post("/api/v1/withdrawals", {**data, "otp_code": fresh_code(alice, secret)}, format="json")
    assert_error(response, status, code)
    assert money_state() == before


def test_a_withdraw_key_withdraws_from_its_allowed_address_only(alice, market):
    secret = enable_two_factor(alice)
    api_key, key_secret = services.api_key_create(
        user=alice, scopes=["read", "withdraw"], ip_allowlist=["10.0.0.9"], otp_code=fresh_code(alice, secret)
    )
    data = {"asset": "BTC", "amount": "2", "address": "bc1qbot"}
    ok = signed_request(
        APIClient(REMOTE_ADDR="10.0.0.9"), "POST", "/api/v1/withdrawals", key=api_key.key, secret=key_secret, data=data
    )
    assert ok.status_code == 201, ok.content
    refused = signed_request(
        APIClient(REMOTE_ADDR="10.0.0.10"), "POST", "/api/v1/withdrawals", key=api_key.key, secret=key_secret, data=data
    )
    assert_error(refused, 401, "authentication_failed")
    assert btc_available(alice) == D(8)
    assert_exchange_invariants()


def test_a_trading_key_cannot_withdraw(alice, market):
    api_key, key_secret = services.api_key_create(user=alice)
    data = {"asset": "BTC", "amount": "1", "address": "bc1qbot"}
    response = signed_request(APIClient(), "POST", "/api/v1/withdrawals", key=api_key.key, secret=key_secret, data=data)
    body = assert_error(response, 403, "scope_required")
    assert body["details"]["scope"] == "withdraw"
    assert btc_available(alice) == D(10)
    listed = signed_request(APIClient(), "GET", "/api/v1/withdrawals", key=api_key.key, secret=key_secret)
    assert listed.status_code == 200 and listed.json() == []
