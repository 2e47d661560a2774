"""Balances and API-key endpoints, and the HMAC-signed API-key authentication."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from rest_framework.test import APIClient

from accounts import services
from accounts.models import ApiKey
from orders.models import Order
from tests.factories import AssetFactory, UserFactory
from tests.invariants import assert_exchange_invariants
from tests.signing import now_ms, signed_headers, signed_request

D = Decimal

pytestmark = pytest.mark.django_db


@pytest.fixture
def client():
    return APIClient()


@pytest.fixture
def as_alice(alice):
    client = APIClient()
    client.force_authenticate(alice)
    return client


@pytest.fixture
def as_bob(bob):
    client = APIClient()
    client.force_authenticate(bob)
    return client


def assert_error(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.content
    body = response.json()
    assert set(body) == {"code", "message", "details"} and body["code"] == code and body["message"]
    return body


# --- balances -------------------------------------------------------------------------------


def test_balances_are_decimal_strings(as_alice, market):
    response = as_alice.get("/api/v1/account/balances")
    assert response.status_code == 200
    assert response.json() == [
        {"asset": "BTC", "available": "10", "locked": "0"},
        {"asset": "USDT", "available": "100000", "locked": "0"},
    ]


def test_balances_show_only_your_own(as_bob, alice, btc):
    services.deposit(user=alice, asset=AssetFactory(symbol="ETH"), amount=D("0.00000001"))
    assert [b["asset"] for b in as_bob.get("/api/v1/account/balances").json()] == ["BTC", "USDT"]


def test_balances_of_a_new_user_are_empty(client, db):
    client.force_authenticate(UserFactory())
    assert client.get("/api/v1/account/balances").json() == []


def test_balances_show_what_open_orders_lock(as_alice, market):
    response = as_alice.post(
        "/api/v1/orders",
        {"market": "BTC_USDT", "side": "sell", "type": "limit", "price": "100", "quantity": "0.25"},
        format="json",
    )
    assert response.status_code == 201
    assert as_alice.get("/api/v1/account/balances").json()[0] == {"asset": "BTC", "available": "9.75", "locked": "0.25"}
    assert_exchange_invariants()


def test_balances_with_more_than_28_significant_digits_are_shown_exactly(client, db):
    token = AssetFactory(symbol="TOKEN18", precision=18)
    user = UserFactory()
    for _ in range(2):
        services.deposit(user=user, asset=token, amount=D("9999999999.123456789012345678"))
    client.force_authenticate(user)
    assert client.get("/api/v1/account/balances").json() == [
        {"asset": "TOKEN18", "available": "19999999998.246913578024691356", "locked": "0"}
    ]


@pytest.mark.parametrize(
    "path", ["/api/v1/account/balances", "/api/v1/api-keys", "/api/v1/orders", "/api/v1/orders/open", "/api/v1/trades"]
)
def test_anonymous_is_not_authenticated(client, db, path):
    assert_error(client.get(path), 401, "not_authenticated")


# --- API key endpoints ----------------------------------------------------------------------


def test_create_api_key_shows_the_secret_once(as_alice, alice):
    response = as_alice.post("/api/v1/api-keys", {"label": "my bot"}, format="json")

    assert response.status_code == 201
    created = response.json()
    assert set(created) == {"id", "label", "key", "scopes", "ip_allowlist", "created_at", "revoked_at", "secret"}
    assert created["scopes"] == ["read", "trade"] and created["ip_allowlist"] == []
    assert created["label"] == "my bot" and created["revoked_at"] is None
    stored = ApiKey.objects.get(pk=created["id"])
    assert stored.user == alice and stored.key == created["key"]
    assert services.api_key_secret(stored) == created["secret"]

    listed = as_alice.get("/api/v1/api-keys").json()
    assert listed == [{k: v for k, v in created.items() if k != "secret"}]
    assert created["secret"] not in json.dumps(listed)


def test_create_api_key_without_a_label(as_alice):
    response = as_alice.post("/api/v1/api-keys", {}, format="json")
    assert response.status_code == 201 and response.json()["label"] == ""


def test_create_api_key_with_a_too_long_label_is_invalid(as_alice):
    body = assert_error(as_alice.post("/api/v1/api-keys", {"label": "x" * 65}, format="json"), 400, "invalid_request")
    assert "label" in body["details"]["fields"]
    assert not ApiKey.objects.exists()


def test_api_keys_list_shows_only_your_own_newest_first(as_alice, alice, bob):
    first, _ = services.api_key_create(user=alice, label="one")
    second, _ = services.api_key_create(user=alice, label="two")
    services.api_key_create(user=bob, label="bobs")
    assert [k["id"] for k in as_alice.get("/api/v1/api-keys").json()] == [second.pk, first.pk]


def test_revoke_api_key(as_alice, alice):
    api_key, _ = services.api_key_create(user=alice)
    response = as_alice.delete(f"/api/v1/api-keys/{api_key.pk}")
    assert response.status_code == 200
    assert response.json()["id"] == api_key.pk and response.json()["revoked_at"] is not None
    assert ApiKey.objects.get(pk=api_key.pk).revoked_at is not None
    # Revoked keys stay listed, marked revoked.
    assert as_alice.get("/api/v1/api-keys").json()[0]["revoked_at"] is not None


def test_revoking_someone_elses_api_key_is_404(as_bob, alice):
    api_key, _ = services.api_key_create(user=alice)
    assert_error(as_bob.delete(f"/api/v1/api-keys/{api_key.pk}"), 404, "api_key_not_found")
    assert ApiKey.objects.get(pk=api_key.pk).revoked_at is None


def test_revoking_a_missing_api_key_is_404(as_alice):
    assert_error(as_alice.delete("/api/v1/api-keys/424242"), 404, "api_key_not_found")


# --- signed requests ------------------------------------------------------------------------


@pytest.fixture
def key(alice):
    """Alice's API key: (public key, secret)."""
    api_key, secret = services.api_key_create(user=alice, label="bot")
    return api_key.key, secret


@pytest.fixture
def bot():
    """A client with no session and CSRF checks on, as a bot would be."""
    return APIClient(enforce_csrf_checks=True)


def signed(bot, method, path, key, data=None, **options):
    return signed_request(bot, method, path, key=key[0], secret=key[1], data=data, **options)


def test_signed_get_succeeds(bot, key, market):
    response = signed(bot, "GET", "/api/v1/account/balances", key)
    assert response.status_code == 200
    assert [b["asset"] for b in response.json()] == ["BTC", "USDT"]


def test_signed_get_with_a_query_string(bot, key, market, alice):
    Order.objects.create(
        user=alice, market=market, client_order_id="c1", side="buy", type="limit", price=D(1), quantity=D(1)
    )
    response = signed(bot, "GET", "/api/v1/orders/open?market=BTC_USDT", key)
    assert response.status_code == 200 and [o["client_order_id"] for o in response.json()] == ["c1"]


def test_signed_post_succeeds_without_csrf(bot, key, market, alice):
    order = Order.objects.create(
        user=alice, market=market, client_order_id="c1", side="buy", type="limit", price=D(1), quantity=D(1)
    )
    response = signed(bot, "POST", "/api/v1/orders/cancel-all", key, {"market": "BTC_USDT"})
    assert response.status_code == 202, response.content
    assert response.json() == {"market": "BTC_USDT", "order_ids": [order.pk]}


def test_signed_order_placement(bot, key, market, alice):
    data = {"market": "BTC_USDT", "side": "buy", "type": "limit", "price": "100", "quantity": "1"}
    response = signed(bot, "POST", "/api/v1/orders", key, data)
    assert response.status_code == 201, response.content
    assert Order.objects.get().user == alice
    assert_exchange_invariants()


def test_signed_delete_succeeds(bot, key, market, alice):
    order = Order.objects.create(
        user=alice, market=market, client_order_id="c1", side="buy", type="limit", price=D(1), quantity=D(1)
    )
    response = signed(bot, "DELETE", f"/api/v1/orders/{order.pk}", key)
    assert response.status_code == 202 and response.json()["cancel_requested"] is True


def test_session_requests_still_need_csrf(alice, market):
    """The contrast: a browser session without a CSRF token is refused on a POST."""
    browser = APIClient(enforce_csrf_checks=True)
    browser.force_login(alice)
    assert browser.get("/api/v1/account/balances").status_code == 200
    response = browser.post("/api/v1/orders/cancel-all", {"market": "BTC_USDT"}, format="json")
    assert_error(response, 403, "permission_denied")


def test_recv_window_header_may_be_left_out(bot, key, market):
    """Without X-Recv-Window the server's default window (5000) is what was signed."""
    response = signed(bot, "GET", "/api/v1/account/balances", key, recv_window=None)
    assert response.status_code == 200


@pytest.mark.parametrize(
    ("age_ms", "recv_window"),
    [(4000, 5000), (50_000, 60_000), (-900, 5000)],
    ids=["inside-default", "inside-max-window", "clock-a-little-ahead"],
)
def test_timestamps_inside_the_window_are_accepted(bot, key, market, age_ms, recv_window):
    response = signed(bot, "GET", "/api/v1/account/balances", key, timestamp=now_ms() - age_ms, recv_window=recv_window)
    assert response.status_code == 200, response.content


def _bad_headers(key, case: str) -> dict[str, str]:
    path = "/api/v1/account/balances"
    good = {"key": key[0], "secret": key[1], "method": "GET", "path": path}
    if case == "wrong-signature":
        return signed_headers(**{**good, "secret": "not-the-secret"})
    if case == "signature-of-another-path":
        return signed_headers(**{**good, "path": "/api/v1/api-keys"})
    if case == "signature-of-another-method":
        return signed_headers(**{**good, "method": "POST"})
    if case == "signature-of-a-body":
        return signed_headers(**good, body=b"{}")
    if case == "signed-window-differs":
        headers = signed_headers(**good, recv_window=5000)
        return {**headers, "HTTP_X_RECV_WINDOW": "6000"}
    if case == "unknown-key":
        return signed_headers(**{**good, "key": "no-such-key"})
    if case == "too-old":
        return signed_headers(**good, timestamp=now_ms() - 6000)
    if case == "too-old-for-its-window":
        return signed_headers(**good, timestamp=now_ms() - 2000, recv_window=1000)
    if case == "too-far-in-the-future":
        return signed_headers(**good, timestamp=now_ms() + 5000)
    if case == "window-too-large":
        return signed_headers(**good, recv_window=60_001)
    if case == "window-zero":
        return signed_headers(**good, recv_window=0)
    if case == "window-negative":
        return signed_headers(**good, recv_window=-1)
    if case == "window-not-a-number":
        headers = signed_headers(**good)
        return {**headers, "HTTP_X_RECV_WINDOW": "5s"}
    if case == "timestamp-not-a-number":
        headers = signed_headers(**good)
        return {**headers, "HTTP_X_TIMESTAMP": "yesterday"}
    if case == "missing-timestamp":
        return {k: v for k, v in signed_headers(**good).items() if k != "HTTP_X_TIMESTAMP"}
    if case == "missing-signature":
        return {k: v for k, v in signed_headers(**good).items() if k != "HTTP_X_SIGNATURE"}
    raise AssertionError(case)


BAD_CASES = [
    "wrong-signature",
    "signature-of-another-path",
    "signature-of-another-method",
    "signature-of-a-body",
    "signed-window-differs",
    "unknown-key",
    "too-old",
    "too-old-for-its-window",
    "too-far-in-the-future",
    "window-too-large",
    "window-zero",
    "window-negative",
    "window-not-a-number",
    "timestamp-not-a-number",
    "missing-timestamp",
    "missing-signature",
]


@pytest.mark.parametrize("case", BAD_CASES)
def test_bad_signed_requests_fail_authentication(bot, key, market, case):
    response = bot.get("/api/v1/account/balances", **_bad_headers(key, case))
    assert_error(response, 401, "authentication_failed")


def test_a_bad_signature_does_not_fall_back_to_the_session(alice, key, market):
    """A request that carries an API key is judged by it, even from a logged-in browser."""
    browser = APIClient()
    browser.force_login(alice)
    response = browser.get("/api/v1/account/balances", **_bad_headers(key, "wrong-signature"))
    assert_error(response, 401, "authentication_failed")


def test_a_revoked_key_is_refused(bot, key, alice):
    services.api_key_revoke(user=alice, key_id=ApiKey.objects.get(key=key[0]).pk)
    assert_error(signed(bot, "GET", "/api/v1/account/balances", key), 401, "authentication_failed")


def test_the_key_of_a_deactivated_user_is_refused(bot, key, alice):
    alice.is_active = False
    alice.save(update_fields=["is_active"])
    assert_error(signed(bot, "GET", "/api/v1/account/balances", key), 401, "authentication_failed")


def test_a_refused_signed_post_changes_nothing(bot, key, market, alice):
    order = Order.objects.create(
        user=alice, market=market, client_order_id="c1", side="buy", type="limit", price=D(1), quantity=D(1)
    )
    body = json.dumps({"market": "BTC_USDT"}).encode()
    headers = signed_headers(key=key[0], secret=key[1], method="POST", path="/api/v1/orders/cancel-all", body=body)
    tampered = json.dumps({"market": "btc_usdt"}).encode()
    response = bot.post("/api/v1/orders/cancel-all", data=tampered, content_type="application/json", **headers)
    assert_error(response, 401, "authentication_failed")
    order.refresh_from_db()
    assert order.cancel_requested_at is None


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_the_same_signed_request_twice_is_a_replay(bot, key, market, method):
    path = "/api/v1/account/balances" if method == "GET" else "/api/v1/orders/cancel-all"
    body = b"" if method == "GET" else json.dumps({"market": "BTC_USDT"}).encode()
    headers = signed_headers(key=key[0], secret=key[1], method=method, path=path, body=body)

    def send():
        if method == "GET":
            return bot.get(path, **headers)
        return bot.post(path, data=body, content_type="application/json", **headers)

    assert send().status_code in (200, 202)
    body = assert_error(send(), 401, "authentication_failed")
    assert "already used" in body["message"]


def test_two_requests_signed_separately_both_pass(bot, key, market):
    assert signed(bot, "GET", "/api/v1/account/balances", key).status_code == 200
    # A new signature needs a different timestamp or request; this one differs by its query string.
    assert signed(bot, "GET", "/api/v1/account/balances?x=1", key).status_code == 200


def test_signed_requests_act_as_the_keys_owner_only(bot, key, bob, market):
    bobs = Order.objects.create(
        user=bob, market=market, client_order_id="b1", side="buy", type="limit", price=D(1), quantity=D(1)
    )
    assert_error(signed(bot, "GET", f"/api/v1/orders/{bobs.pk}", key), 404, "order_not_found")


def test_a_key_revoked_while_cached_by_the_worker_is_refused_at_once(
    bot, key, alice, django_capture_on_commit_callbacks
):
    assert signed(bot, "GET", "/api/v1/account/balances", key).status_code == 200  # now cached
    with django_capture_on_commit_callbacks(execute=True):
        services.api_key_revoke(user=alice, key_id=ApiKey.objects.get(key=key[0]).pk)
    assert_error(signed(bot, "GET", "/api/v1/account/balances", key), 401, "authentication_failed")


def test_requests_past_the_rate_limit_get_429_throttled(alice, monkeypatch):
    from exchange_site import throttling

    monkeypatch.setattr(throttling.UserRateThrottle, "THROTTLE_RATES", {"user": "3/minute"})
    client = APIClient()
    client.force_authenticate(alice)
    assert [client.get("/api/v1/account/balances").status_code for _ in range(3)] == [200] * 3
    response = client.get("/api/v1/account/balances")
    assert_error(response, 429, "throttled")
    assert int(response["Retry-After"]) <= 60


def test_create_api_key_command_prints_a_working_key(alice, market):
    from io import StringIO

    from django.core.management import CommandError, call_command

    out = StringIO()
    call_command("create_api_key", "alice", "--label", "bot", stdout=out)
    fields = dict(line.split("=", 1) for line in out.getvalue().split())
    response = signed(APIClient(), "GET", "/api/v1/account/balances", (fields["key"], fields["secret"]))
    assert response.status_code == 200
    with pytest.raises(CommandError):
        call_command("create_api_key", "nobody")
