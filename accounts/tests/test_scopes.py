"""API key scopes and IP allowlists, on our REST API and on the Binance-compatible one."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import IntegrityError, transaction
from django.test import override_settings
from rest_framework.settings import api_settings
from rest_framework.test import APIClient

from accounts import services
from accounts.models import ApiKey
from accounts.tests.two_factor import enable_two_factor, fresh_code
from compat.tests.binance import BinanceClient
from exchange_site.client_ip import allowed, client_ip_from, parse_allowlist
from exchange_site.errors import ApplicationError
from orders.models import Order
from tests.factories import place_limit
from tests.invariants import assert_exchange_invariants
from tests.signing import signed_request

pytestmark = pytest.mark.django_db
ORDER = {"market": "BTC_USDT", "side": "buy", "type": "limit", "price": "100", "quantity": "1"}


def assert_error(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.content
    body = response.json()
    assert set(body) == {"code", "message", "details"} and body["code"] == code and body["message"]
    return body


def make_key(user, **options) -> tuple[str, str]:
    api_key, secret = services.api_key_create(user=user, **options)
    return api_key.key, secret


def signed(method, path, key, data=None, **extra):
    return signed_request(APIClient(**extra), method, path, key=key[0], secret=key[1], data=data)


# --- scopes on our API ------------------------------------------------------------------------


def test_existing_and_default_keys_read_and_trade(alice, market):
    key = make_key(alice)
    assert ApiKey.objects.get(key=key[0]).scopes == ["read", "trade"]
    assert signed("POST", "/api/v1/orders", key, ORDER).status_code == 201


def test_a_read_only_key_reads_but_cannot_place_or_cancel(alice, market):
    key = make_key(alice, scopes=["read"])
    assert signed("GET", "/api/v1/account/balances", key).status_code == 200
    body = assert_error(signed("POST", "/api/v1/orders", key, ORDER), 403, "scope_required")
    assert body["details"]["scope"] == "trade" and "trade" in body["message"]
    assert not Order.objects.exists()
    order = place_limit(alice, market, "buy", "1", "1", client_order_id="c1")  # placed by the service: funds held
    assert_error(signed("DELETE", f"/api/v1/orders/{order.pk}", key), 403, "scope_required")
    assert_error(signed("POST", "/api/v1/orders/cancel-all", key, {"market": "BTC_USDT"}), 403, "scope_required")
    assert_error(signed("POST", "/api/v1/orders/batch", key, {"orders": [ORDER]}), 403, "scope_required")
    assert Order.objects.get().cancel_requested_at is None
    assert Order.objects.count() == 1
    assert_exchange_invariants()


def test_a_trade_only_key_cannot_read(alice, market):
    key = make_key(alice, scopes=["trade"])
    assert_error(signed("GET", "/api/v1/account/balances", key), 403, "scope_required")


def test_unknown_scopes_are_refused(alice):
    client = APIClient()
    client.force_login(alice)
    response = client.post("/api/v1/api-keys", {"scopes": ["admin"]}, format="json")
    assert_error(response, 400, "invalid_request")
    with pytest.raises(ApplicationError) as refusal:
        services.api_key_create(user=alice, scopes=[])
    assert refusal.value.code == "invalid_scopes"
    assert not ApiKey.objects.exists()


# --- scopes on the Binance-compatible API ------------------------------------------------------


def test_binance_layer_refuses_a_read_only_key_with_minus_2015(alice, market):
    key, secret = make_key(alice, scopes=["read"])
    binance = BinanceClient(APIClient(), key=key, secret=secret)
    assert binance.get("/api/v3/account").status_code == 200
    refused = binance.post(
        "/api/v3/order", symbol="BTCUSDT", side="BUY", type="LIMIT", timeInForce="GTC", price="100", quantity="1"
    )
    assert refused.status_code == 401
    assert refused.json() == {"code": -2015, "msg": "Invalid API-key, IP, or permissions for action."}
    assert binance.delete("/api/v3/openOrders", symbol="BTCUSDT").json()["code"] == -2015
    assert not Order.objects.exists()


# --- withdraw scope: IP allowlist and two-factor required ---------------------------------------


def test_withdraw_scope_needs_an_ip_allowlist(alice):
    secret = enable_two_factor(alice)
    with pytest.raises(ApplicationError) as refusal:
        services.api_key_create(user=alice, scopes=["read", "withdraw"], otp_code=fresh_code(alice, secret))
    assert refusal.value.code == "ip_allowlist_required"
    assert not ApiKey.objects.exists()


def test_withdraw_scope_needs_two_factor(alice):
    client = APIClient()
    client.force_login(alice)
    data = {"scopes": ["withdraw"], "ip_allowlist": ["10.0.0.0/24"]}
    assert_error(client.post("/api/v1/api-keys", data, format="json"), 403, "two_factor_required")
    secret = enable_two_factor(alice)
    assert_error(client.post("/api/v1/api-keys", data, format="json"), 403, "two_factor_code_required")
    wrong = {**data, "otp_code": "000000" if fresh_code(alice, secret) != "000000" else "111111"}
    assert_error(client.post("/api/v1/api-keys", wrong, format="json"), 403, "two_factor_code_invalid")
    assert not ApiKey.objects.exists()
    created = client.post("/api/v1/api-keys", {**data, "otp_code": fresh_code(alice, secret)}, format="json")
    assert created.status_code == 201, created.content
    assert created.json()["scopes"] == ["withdraw"] and created.json()["ip_allowlist"] == ["10.0.0.0/24"]
    assert created.json()["secret"]


def test_the_database_refuses_a_withdraw_key_without_allowlist(alice):
    with pytest.raises(IntegrityError), transaction.atomic():
        ApiKey.objects.create(user=alice, key="k", secret_encrypted=b"x", scopes=["withdraw"], ip_allowlist=[])


@pytest.mark.parametrize("entry", ["10.0.0.5/24", "not-an-ip", "10.0.0.0/33", "300.1.1.1"])
def test_malformed_allowlist_entries_are_refused(alice, entry):
    with pytest.raises(ApplicationError) as refusal:
        services.api_key_create(user=alice, ip_allowlist=[entry])
    assert refusal.value.code == "invalid_ip_allowlist" and entry in refusal.value.message


def test_an_allowlisted_key_answers_only_from_its_addresses(alice, market):
    key = make_key(alice, ip_allowlist=["10.0.0.0/24", "2001:db8::/48"])
    assert signed("GET", "/api/v1/account/balances", key, REMOTE_ADDR="10.0.0.7").status_code == 200
    assert signed("GET", "/api/v1/account/balances", key, REMOTE_ADDR="2001:db8::1").status_code == 200
    refused = signed("GET", "/api/v1/account/balances", key, REMOTE_ADDR="10.0.1.7")
    assert_error(refused, 401, "authentication_failed")
    assert "allowlist" in refused.json()["message"]
    refused = signed("POST", "/api/v1/orders", key, ORDER, REMOTE_ADDR="192.0.2.1")
    assert_error(refused, 401, "authentication_failed")
    assert not Order.objects.exists()


def test_binance_layer_refuses_an_address_outside_the_allowlist(alice, market):
    key, secret = make_key(alice, ip_allowlist=["10.0.0.1"])
    inside = BinanceClient(APIClient(REMOTE_ADDR="10.0.0.1"), key=key, secret=secret)
    outside = BinanceClient(APIClient(REMOTE_ADDR="10.0.0.2"), key=key, secret=secret)
    assert inside.get("/api/v3/account").status_code == 200
    assert outside.get("/api/v3/account").json()["code"] == -2015
    listen = APIClient(REMOTE_ADDR="10.0.0.2").post("/api/v3/userDataStream", HTTP_X_MBX_APIKEY=key)
    assert listen.json()["code"] == -2015


def test_x_forwarded_for_is_ignored_unless_proxies_are_trusted(alice, market):
    key = make_key(alice, ip_allowlist=["203.0.113.9"])
    forged = {"REMOTE_ADDR": "10.9.9.9", "HTTP_X_FORWARDED_FOR": "203.0.113.9"}
    assert signed("GET", "/api/v1/account/balances", key, **forged).status_code == 401
    rest = {**api_settings.user_settings, "NUM_PROXIES": 1}
    with override_settings(REST_FRAMEWORK=rest):
        # Behind one proxy the client is the last hop; what the client wrote before it is ignored.
        via_proxy = {"REMOTE_ADDR": "10.0.0.1", "HTTP_X_FORWARDED_FOR": "6.6.6.6, 203.0.113.9"}
        assert signed("GET", "/api/v1/account/balances", key, **via_proxy).status_code == 200
        spoofed = {"REMOTE_ADDR": "10.0.0.1", "HTTP_X_FORWARDED_FOR": "203.0.113.9, 6.6.6.6"}
        assert signed("GET", "/api/v1/account/balances", key, **spoofed).status_code == 401


def test_client_ip_rules():
    assert str(client_ip_from(remote_addr="10.0.0.1", forwarded_for="1.2.3.4", proxies=0)) == "10.0.0.1"
    assert str(client_ip_from(remote_addr="10.0.0.1", forwarded_for="1.2.3.4, 5.6.7.8", proxies=1)) == "5.6.7.8"
    assert str(client_ip_from(remote_addr="10.0.0.1", forwarded_for="1.2.3.4, 5.6.7.8", proxies=2)) == "1.2.3.4"
    assert str(client_ip_from(remote_addr="10.0.0.1", forwarded_for="5.6.7.8", proxies=2)) == "10.0.0.1"
    assert client_ip_from(remote_addr="10.0.0.1", forwarded_for="junk", proxies=1) is None
    assert parse_allowlist(["10.0.0.1", " 10.1.0.0/16 ", "", "10.0.0.1"]) == ["10.0.0.1/32", "10.1.0.0/16"]
    assert allowed(None, []) and not allowed(None, ["10.0.0.1/32"])


# --- the management command and the page --------------------------------------------------------


def test_create_api_key_command_takes_scopes_and_ips(alice):
    out = io.StringIO()
    call_command("create_api_key", "alice", "--scopes", "read,withdraw", "--ip", "10.0.0.1", stdout=out)
    api_key = ApiKey.objects.get()
    assert api_key.scopes == ["read", "withdraw"] and api_key.ip_allowlist == ["10.0.0.1/32"]
    assert "scopes=read,withdraw" in out.getvalue()
    with pytest.raises(CommandError, match="ip_allowlist_required"):
        call_command("create_api_key", "alice", "--scopes", "withdraw", stdout=io.StringIO())


def test_the_account_page_creates_a_scoped_key_with_an_allowlist(alice):
    from django.test import Client

    client = Client()
    client.force_login(alice)
    response = client.post(
        "/account/api-keys/", {"label": "reader", "scopes": ["read"], "ip_allowlist": "10.0.0.1, 10.2.0.0/16"}
    )
    assert response.status_code == 201
    api_key = ApiKey.objects.get()
    assert api_key.scopes == ["read"] and api_key.ip_allowlist == ["10.0.0.1/32", "10.2.0.0/16"]
    assert services.api_key_secret(api_key) in response.content.decode()
    refused = client.post("/account/api-keys/", {"scopes": ["withdraw"], "ip_allowlist": "10.0.0.1"})
    assert refused.status_code == 403 and b"two_factor_required" in refused.content
    assert ApiKey.objects.count() == 1
