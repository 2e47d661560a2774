"""Cross-user isolation, systematically: another user's object is "not found" everywhere, and nothing changes.

Alice is the attacker.  Bob (and Carol, who trades with him) own the
objects she aims at: live orders, a filled order, trades, balances, ledger
entries, API keys and a listen key.  Every route of the site (and every
WebSocket route) is listed below either as covered by an isolation test or as
public with the reason; ``test_every_route_is_classified`` fails when a new
route is added without one, and every route that takes an id in its path
must be covered.

Through each interface (REST ``/api/v1``, pages, the Binance-compatible
``/api/v3``, WebSockets) Alice gets the same answer for Bob's id as for an id
that never existed (so ids cannot even be probed), and the state of Bob and
Carol (orders, balances, ledger, API keys, listen key, cancel commands sent
to the engine) is byte-for-byte what it was.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from decimal import Decimal

import pyotp
import pytest
import pytest_asyncio
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.contrib.messages import get_messages
from django.db import connections
from django.urls import URLPattern, URLResolver, get_resolver, resolve
from rest_framework.test import APIClient

from accounts import services as money
from accounts.models import ApiKey, Balance, LedgerEntry, RecoveryCode, TwoFactorDevice, User
from accounts.services import api_key_create
from compat import routing as compat_routing
from compat import services as compat_services
from compat.selectors import listen_key_user_id
from compat.symbols import index as binance_symbols
from compat.tests.binance import BinanceClient, binance_signature, now_ms
from exchange_site.amounts import plain
from exchange_site.asgi import application
from exchange_site.redis import get_redis
from marketdata import routing as marketdata_routing
from orders.models import Order, Trade
from orders.streams import stream_key
from tests.engine_driver import EngineDriver
from tests.factories import UserFactory, fund, place_limit
from tests.signing import signed_headers, signed_request

NEVER_USED_ID = 987_654_321

# --- the route inventory --------------------------------------------------------------------

# Every route that reaches a user's own objects, and the test(s) here that attack it.
ISOLATION = {
    "api/v1/account/balances": ["test_rest_lists_show_only_your_own"],
    "api/v1/api-keys": ["test_rest_lists_show_only_your_own"],
    "api/v1/api-keys/<int:key_id>": ["test_rest_object_endpoints_refuse_another_users_id"],
    "api/v1/orders": ["test_rest_lists_show_only_your_own", "test_rest_lists_ignore_a_user_named_in_the_query"],
    "api/v1/orders/open": ["test_rest_lists_show_only_your_own"],
    "api/v1/orders/cancel-all": ["test_rest_cancel_all_cancels_only_your_own"],
    "api/v1/orders/batch": ["test_rest_batch_placement_cannot_place_for_another_user"],
    "api/v1/orders/cancel-batch": ["test_rest_batch_cancel_with_another_users_ids"],
    "api/v1/orders/<int:order_id>": ["test_rest_object_endpoints_refuse_another_users_id"],
    "api/v1/orders/client/<str:client_order_id>": [
        "test_rest_object_endpoints_refuse_another_users_id",
        "test_rest_a_shared_client_order_id_names_your_own_order",
    ],
    "api/v1/trades": ["test_rest_lists_show_only_your_own"],
    "api/v1/withdrawals": ["test_rest_withdrawals_list_and_spend_only_your_own"],
    "account/withdraw/": ["test_page_withdrawal_form_spends_and_shows_only_your_own"],
    "account/2fa/": ["test_two_factor_pages_act_on_your_own_device_only"],
    "account/2fa/setup/": ["test_two_factor_pages_act_on_your_own_device_only"],
    "account/2fa/confirm/": ["test_two_factor_pages_act_on_your_own_device_only"],
    "account/2fa/disable/": ["test_two_factor_pages_act_on_your_own_device_only"],
    "account/2fa/recovery-codes/": ["test_two_factor_pages_act_on_your_own_device_only"],
    "orders/": ["test_pages_show_only_your_own"],
    "orders/fills/": ["test_pages_show_only_your_own"],
    "orders/place/<str:symbol>/": ["test_page_order_form_places_for_you_only"],
    "orders/<int:order_id>/cancel/": ["test_page_forms_refuse_another_users_id"],
    "orders/cancel-all/": ["test_page_cancel_all_cancels_only_your_own"],
    "account/": ["test_pages_show_only_your_own"],
    "account/api-keys/": ["test_pages_show_only_your_own"],
    "account/api-keys/<int:key_id>/revoke/": ["test_page_forms_refuse_another_users_id"],
    "markets/<str:symbol>/": ["test_pages_show_only_your_own"],
    "api/v3/account": ["test_binance_lists_show_only_your_own"],
    "api/v3/order": ["test_binance_order_by_another_users_id_is_unknown"],
    "api/v3/openOrders": ["test_binance_lists_show_only_your_own", "test_binance_cancel_all_cancels_only_your_own"],
    "api/v3/allOrders": ["test_binance_lists_show_only_your_own"],
    "api/v3/myTrades": ["test_binance_lists_show_only_your_own"],
    "api/v3/userDataStream": ["test_binance_listen_key_of_another_user_does_not_exist"],
    "sapi/v1/asset/tradeFee": ["test_binance_lists_show_only_your_own"],
    "sapi/v1/capital/config/getall": ["test_binance_lists_show_only_your_own"],
    "ws:ws": [
        "test_ws_private_events_reach_only_their_owner",
        "test_ws_streams_naming_another_user_are_refused",
        "test_ws_anonymous_clients_get_no_private_stream",
        "test_ws_a_foreign_origin_is_refused_on_every_route",
    ],
    "ws:binance/ws-api/v3": [
        "test_ws_binance_api_refuses_another_users_listen_key",
        "test_ws_a_foreign_origin_is_refused_on_every_route",
    ],
}

# Routes that hold nothing of any one user, and why.
PUBLIC = {
    "api/v1/markets": "market list",
    "api/v1/markets/<str:symbol>": "one market's filters",
    "api/v1/markets/<str:symbol>/depth": "public order book",
    "api/v1/markets/<str:symbol>/trades": "public trades, no user",
    "api/v1/markets/<str:symbol>/ticker": "public ticker",
    "api/v1/markets/<str:symbol>/klines": "public candles",
    "api/v1/tickers": "public tickers",
    "api/schema": "the OpenAPI document",
    "api/docs": "Swagger UI",
    "api/redoc": "ReDoc",
    "healthz": "liveness probe",
    "readyz": "readiness probe",
    "": "markets overview",
    "signup/": "creates a new user; no id",
    "login/": "Django's login",
    "admin/login/": "sends operators to the site's login (accounts/tests/test_two_factor_guards.py); no id",
    "login/verify/": "the login's two-factor step: the user it verifies is kept in the session by the password "
    "step, never taken from the request (accounts/tests/test_two_factor.py)",
    "logout/": "ends your own session",
    **{
        f"api/v3/{name}": "Binance public market data"
        for name in (
            "ping",
            "time",
            "exchangeInfo",
            "depth",
            "trades",
            "historicalTrades",
            "aggTrades",
            "klines",
            "uiKlines",
            "ticker/24hr",
            "ticker/price",
            "ticker/bookTicker",
        )
    },
    "api/v3/^.*$": "unknown Binance endpoint: a fixed -1020 answer",
    "sapi/v1/system/status": "Binance system status",
    "sapi/v1/margin/allPairs": "always empty (no margin)",
    "sapi/v1/margin/isolated/allPairs": "always empty (no margin)",
    "sapi/v1/^.*$": "unknown Binance endpoint: a fixed -1020 answer",
    # A listen key is a bearer secret (Binance's design): 60 random hex characters name the stream.
    # Creating one needs the API key (test_binance_listen_key_of_another_user_does_not_exist).
    "ws:binance/ws": "Binance market streams (public); listen keys are bearer secrets",
    "ws:^binance/ws/(?P<names>.+)$": "Binance market streams (public); listen keys are bearer secrets",
    "ws:binance/stream": "Binance market streams (public); listen keys are bearer secrets",
}


def _walk(patterns, prefix: str = "") -> list[str]:
    routes = []
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            if pattern.namespace == "admin":
                continue  # Django's admin: staff only, its own permission checks
            routes += _walk(pattern.url_patterns, prefix + str(pattern.pattern))
        elif isinstance(pattern, URLPattern):
            routes.append(prefix + str(pattern.pattern))
    return routes


def http_routes() -> list[str]:
    return _walk(get_resolver().url_patterns)


def ws_routes() -> list[str]:
    return [
        f"ws:{route}"
        for route in _walk(marketdata_routing.websocket_urlpatterns + compat_routing.websocket_urlpatterns)
    ]


def test_every_route_is_classified():
    routes = http_routes() + ws_routes()
    assert len(routes) == len(set(routes))
    unclassified = sorted(set(routes) - ISOLATION.keys() - PUBLIC.keys())
    assert unclassified == [], "add an isolation test (ISOLATION) or a reason (PUBLIC) for these routes"
    assert sorted((ISOLATION.keys() | PUBLIC.keys()) - set(routes)) == [], "stale entries"
    assert not ISOLATION.keys() & PUBLIC.keys()
    # A route taking an object id (not a market symbol) is always an isolation case.
    with_ids = {r for r in routes if "<int:" in r or ("<str:" in r and "<str:symbol>" not in r)}
    assert with_ids <= ISOLATION.keys()
    for tests in ISOLATION.values():
        for name in tests:
            assert callable(globals().get(name)), f"no test named {name}"


@pytest.mark.django_db(transaction=True)
def test_every_schema_operation_is_a_classified_route(client):
    schema = client.get("/api/schema", HTTP_ACCEPT="application/json").json()
    samples = {"order_id": "1", "key_id": "1", "client_order_id": "x", "symbol": "BTC_USDT"}
    for path in schema["paths"]:
        concrete = path
        for name, value in samples.items():
            concrete = concrete.replace("{" + name + "}", value)
        route = resolve(concrete).route
        assert route in ISOLATION or route in PUBLIC, path
    assert len(schema["paths"]) >= 15


# --- the world Alice attacks ---------------------------------------------------------------------


@dataclass
class World:
    alice: User
    bob: User
    carol: User
    bob_live: Order  # resting, client id "shared-id" (Alice has one too)
    bob_private: Order  # resting, a client id only Bob uses
    bob_filled: Order  # sold to Carol
    alice_live: Order
    alice_shared: Order
    bob_key: ApiKey
    bob_secret: str
    alice_key: ApiKey
    alice_secret: str
    bob_listen_key: str


def build_world(market, alice, bob, btc, usdt) -> World:
    carol = UserFactory(username="carol")
    fund(carol, btc, Decimal(10))
    fund(carol, usdt, Decimal(100_000))
    money.deposit(user=bob, asset=btc, amount=Decimal("0.12345678"), note="bob-private-note")
    bob_live = place_limit(bob, market, "buy", "0.5", "90", client_order_id="shared-id")
    bob_private = place_limit(bob, market, "buy", "0.3", "89", client_order_id="bob-only-7f3a")
    alice_live = place_limit(alice, market, "buy", "0.4", "91")
    alice_shared = place_limit(alice, market, "sell", "0.1", "150", client_order_id="shared-id")
    bob_filled = place_limit(bob, market, "sell", "0.2", "120")
    place_limit(carol, market, "buy", "0.2", "120")
    EngineDriver([market]).drain()
    bob_filled.refresh_from_db()
    assert bob_filled.status == Order.Status.FILLED
    bob_key, bob_secret = api_key_create(user=bob, label="bob-key")
    alice_key, alice_secret = api_key_create(user=alice, label="alice-key")
    return World(
        alice=alice, bob=bob, carol=carol, bob_live=bob_live, bob_private=bob_private, bob_filled=bob_filled,
        alice_live=alice_live, alice_shared=alice_shared, bob_key=bob_key, bob_secret=bob_secret,
        alice_key=alice_key, alice_secret=alice_secret, bob_listen_key=compat_services.listen_key_create(user=bob),
    )  # fmt: skip


@pytest.fixture
def world(market, alice, bob, btc, usdt) -> World:
    return build_world(market, alice, bob, btc, usdt)


def cancel_commands() -> set[int]:
    """Order ids the web tier asked the engine to cancel (the command stream in Redis)."""
    entries = get_redis().xrange(stream_key("BTC_USDT"))
    return {int(fields[b"o"]) for _, fields in entries if fields[b"c"] == b"cancel"}


def others_state(world: World) -> dict:
    """Everything of Bob and Carol an attack could change."""
    users = [world.bob.pk, world.carol.pk]
    return {
        "orders": list(
            Order.objects.filter(user__in=users)
            .order_by("pk")
            .values_list("pk", "status", "filled_quantity", "locked_amount", "cancel_requested_at", "end_reason")
        ),
        "balances": list(
            Balance.objects.filter(user__in=users).order_by("pk").values_list("pk", "available", "locked")
        ),
        "ledger": LedgerEntry.objects.filter(user__in=users).count(),
        "trades": Trade.objects.count(),
        "keys": list(ApiKey.objects.filter(user__in=users).order_by("pk").values_list("pk", "revoked_at")),
        "listen_key_owner": listen_key_user_id(world.bob_listen_key),
        "cancels": cancel_commands() & set(Order.objects.filter(user__in=users).values_list("pk", flat=True)),
    }


def session_for(user: User) -> APIClient:
    client = APIClient()
    client.force_login(user)
    return client


def error_of(response) -> tuple[int, str]:
    return response.status_code, response.json()["code"]


# --- REST /api/v1 ---------------------------------------------------------------------------------

OBJECT_ATTACKS = [
    ("GET", "/api/v1/orders/{bob_live}", "order_not_found"),
    ("DELETE", "/api/v1/orders/{bob_live}", "order_not_found"),
    ("GET", "/api/v1/orders/{bob_filled}", "order_not_found"),
    ("GET", "/api/v1/orders/client/{bob_private_cid}", "order_not_found"),
    ("DELETE", "/api/v1/orders/client/{bob_private_cid}", "order_not_found"),
    ("DELETE", "/api/v1/api-keys/{bob_key}", "api_key_not_found"),
]


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(("method", "template", "code"), OBJECT_ATTACKS)
def test_rest_object_endpoints_refuse_another_users_id(world, method, template, code):
    ids = {
        "bob_live": world.bob_live.pk,
        "bob_filled": world.bob_filled.pk,
        "bob_private_cid": world.bob_private.client_order_id,
        "bob_key": world.bob_key.pk,
    }
    alice = session_for(world.alice)
    before = others_state(world)
    attacked = getattr(alice, method.lower())(template.format(**ids))
    missing = getattr(alice, method.lower())(template.format(**dict.fromkeys(ids, NEVER_USED_ID)))
    assert error_of(attacked) == (404, code)
    # Bob's id answers exactly as an id that never existed (the message names no owner).
    assert error_of(missing) == (404, code)
    assert attacked.json()["message"].replace(str(ids.get("bob_key")), "N") == missing.json()["message"].replace(
        str(NEVER_USED_ID), "N"
    )
    assert others_state(world) == before
    # Bob's key still signs Bob's requests.
    signed = signed_request(
        APIClient(), "GET", "/api/v1/account/balances", key=world.bob_key.key, secret=world.bob_secret
    )
    assert signed.status_code == 200


@pytest.mark.django_db(transaction=True)
def test_rest_a_shared_client_order_id_names_your_own_order(world):
    alice = session_for(world.alice)
    before = others_state(world)
    assert alice.get("/api/v1/orders/client/shared-id").json()["id"] == world.alice_shared.pk
    cancelled = alice.delete("/api/v1/orders/client/shared-id")
    assert (cancelled.status_code, cancelled.json()["id"]) == (202, world.alice_shared.pk)
    assert others_state(world) == before
    assert world.alice_shared.pk in cancel_commands()


@pytest.mark.django_db(transaction=True)
def test_rest_batch_cancel_with_another_users_ids(world):
    alice = session_for(world.alice)
    before = others_state(world)
    ids = [world.bob_live.pk, world.alice_live.pk, world.bob_filled.pk, world.bob_private.pk]
    response = alice.post("/api/v1/orders/cancel-batch", {"order_ids": ids}, format="json")
    assert response.status_code == 200
    results = response.json()["results"]
    assert [r["status"] for r in results] == [404, 202, 404, 404]
    assert [r.get("error", {}).get("code") for r in results] == ["order_not_found", None] + ["order_not_found"] * 2
    assert others_state(world) == before
    assert world.alice_live.pk in cancel_commands()


@pytest.mark.django_db(transaction=True)
def test_rest_cancel_all_cancels_only_your_own(world):
    before = others_state(world)
    response = session_for(world.alice).post("/api/v1/orders/cancel-all", {"market": "BTC_USDT"}, format="json")
    assert response.status_code == 202
    assert sorted(response.json()["order_ids"]) == sorted([world.alice_live.pk, world.alice_shared.pk])
    assert others_state(world) == before


@pytest.mark.django_db(transaction=True)
def test_rest_lists_show_only_your_own(world):
    alice = session_for(world.alice)
    mine = set(Order.objects.filter(user=world.alice).values_list("pk", flat=True))
    assert {o["id"] for o in alice.get("/api/v1/orders").json()["results"]} == mine
    assert {o["id"] for o in alice.get("/api/v1/orders/open").json()} == mine
    assert alice.get("/api/v1/trades").json()["results"] == []  # Alice never traded; Bob and Carol did
    bob_trades = session_for(world.bob).get("/api/v1/trades").json()["results"]
    assert [t["order_id"] for t in bob_trades] == [world.bob_filled.pk]  # Bob's side only, not Carol's order
    balances = {b["asset"]: (b["available"], b["locked"]) for b in alice.get("/api/v1/account/balances").json()}
    expected = {
        b.asset.symbol: (plain(b.available), plain(b.locked))
        for b in Balance.objects.filter(user=world.alice).select_related("asset")
    }
    assert balances == expected
    assert [k["id"] for k in alice.get("/api/v1/api-keys").json()] == [world.alice_key.pk]


@pytest.mark.django_db(transaction=True)
def test_rest_lists_ignore_a_user_named_in_the_query(world):
    alice = session_for(world.alice)
    mine = set(Order.objects.filter(user=world.alice).values_list("pk", flat=True))
    for params in ({"user": world.bob.pk}, {"user_id": world.bob.pk}, {"user": "bob"}):
        listed = alice.get("/api/v1/orders", params).json()["results"]
        assert {o["id"] for o in listed} == mine
        assert alice.get("/api/v1/trades", params).json()["results"] == []


SERVER_OWNED = {"user": "bob", "user_id": 0, "status": "filled", "filled": "0.5", "filled_quantity": "0.5",
                "fee": "0", "id": 1, "created_at": "2000-01-01T00:00:00Z"}  # fmt: skip
ORDER = {"market": "BTC_USDT", "side": "buy", "type": "limit", "price": "95", "quantity": "0.1"}


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("field", sorted(SERVER_OWNED))
def test_rest_placement_refuses_a_field_the_server_owns(world, field):
    value = world.bob.pk if field in ("user_id", "id") else SERVER_OWNED[field]
    alice = session_for(world.alice)
    before = others_state(world)
    count = Order.objects.count()
    response = alice.post("/api/v1/orders", {**ORDER, field: value}, format="json")
    assert error_of(response) == (400, "unknown_field")
    assert response.json()["details"]["fields"] == [field]
    assert Order.objects.count() == count
    assert others_state(world) == before


@pytest.mark.django_db(transaction=True)
def test_rest_batch_placement_cannot_place_for_another_user(world):
    alice = session_for(world.alice)
    before = others_state(world)
    bob_orders = Order.objects.filter(user=world.bob).count()
    items = [{**ORDER, "user_id": world.bob.pk}, {**ORDER, "status": "filled", "fee": "0"}, ORDER]
    # ``user`` at the top level of the batch is not a field of any order: ignored, the batch is Alice's.
    response = alice.post("/api/v1/orders/batch", {"orders": items, "user": world.bob.pk}, format="json")
    assert response.status_code == 200
    results = response.json()["results"]
    assert [(r["status"], r.get("error", {}).get("code")) for r in results] == [
        (400, "unknown_field"),
        (400, "unknown_field"),
        (201, None),
    ]
    placed = Order.objects.get(pk=results[2]["order"]["id"])
    assert (placed.user_id, placed.status, placed.filled_quantity) == (world.alice.pk, Order.Status.PENDING, 0)
    assert Order.objects.filter(user=world.bob).count() == bob_orders
    assert others_state(world) == before


# --- pages --------------------------------------------------------------------------------------


def flash(response) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("template", "code"),
    [("/orders/{order}/cancel/", "order_not_found"), ("/account/api-keys/{key}/revoke/", "api_key_not_found")],
)
def test_page_forms_refuse_another_users_id(world, template, code):
    """Pages answer with the page flow (redirect and a message with the code), the same as for a missing id."""
    before = others_state(world)
    attacked = session_for(world.alice).post(template.format(order=world.bob_live.pk, key=world.bob_key.pk))
    missing = session_for(world.alice).post(template.format(order=NEVER_USED_ID, key=NEVER_USED_ID))
    assert attacked.status_code == missing.status_code == 302
    assert attacked["Location"] == missing["Location"]
    assert len(flash(attacked)) == 1 and f"({code})" in flash(attacked)[0]
    assert flash(attacked)[0].replace(str(world.bob_live.pk), "N").replace(str(world.bob_key.pk), "N") == flash(
        missing
    )[0].replace(str(NEVER_USED_ID), "N")
    assert others_state(world) == before


@pytest.mark.django_db(transaction=True)
def test_page_cancel_all_cancels_only_your_own(world):
    before = others_state(world)
    response = session_for(world.alice).post("/orders/cancel-all/", {"market": "BTC_USDT"})
    assert response.status_code == 302
    assert others_state(world) == before
    assert {world.alice_live.pk, world.alice_shared.pk} <= cancel_commands()


@pytest.mark.django_db(transaction=True)
def test_page_order_form_places_for_you_only(world):
    before = others_state(world)
    count = Order.objects.filter(user=world.alice).count()
    form = {"side": "buy", "type": "limit", "price": "95", "quantity": "0.1", "time_in_force": "gtc",
            "user": world.bob.pk, "user_id": world.bob.pk, "status": "filled", "fee": "0"}  # fmt: skip
    response = session_for(world.alice).post("/orders/place/BTC_USDT/", form)
    assert response.status_code == 302, response.content[:2000]
    newest = Order.objects.latest("pk")
    assert (newest.user_id, newest.status) == (world.alice.pk, Order.Status.PENDING)
    assert Order.objects.filter(user=world.alice).count() == count + 1
    assert others_state(world) == before


@pytest.mark.django_db(transaction=True)
def test_pages_show_only_your_own(world):
    alice = session_for(world.alice)
    bob_ids = set(Order.objects.filter(user__in=[world.bob, world.carol]).values_list("pk", flat=True))
    history = alice.get("/orders/")
    assert {o.pk for o in history.context["page"].object_list} == {world.alice_live.pk, world.alice_shared.pk}
    assert not {t.pk for t in alice.get("/orders/fills/").context["page"].object_list}
    account = alice.get("/account/")
    assert {e.user_id for e in account.context["ledger"].object_list} == {world.alice.pk}
    assert {b.user_id for b in account.context["balances"]} == {world.alice.pk}
    assert [k.pk for k in account.context["api_keys"]] == [world.alice_key.pk]
    assert b"bob-private-note" not in account.content and b"bob-key" not in account.content
    created = alice.post("/account/api-keys/", {"label": "new", "scopes": ["read"], "user": world.bob.pk})
    assert created.status_code == 201 and ApiKey.objects.get(label="new").user_id == world.alice.pk
    trade = alice.get("/markets/BTC_USDT/")
    shown = {o.pk for o in trade.context["open_orders"]} | {o.pk for o in trade.context["recent_orders"]}
    assert shown and not shown & bob_ids
    assert not list(trade.context["fills"])
    assert b"bob-only-7f3a" not in trade.content and b"bob-only-7f3a" not in history.content


def two_factor_on(user: User) -> pyotp.TOTP:
    """Turn ``user``'s two-factor authentication on with a code one step old, so the current code is still unused."""
    _, secret = money.two_factor_begin(user=user)
    totp = pyotp.TOTP(secret)
    money.two_factor_confirm(user=user, code=totp.at(time.time() - money.TOTP_STEP_SECONDS), password="pass")
    return totp


@pytest.mark.django_db(transaction=True)
def test_rest_withdrawals_list_and_spend_only_your_own(world, btc):
    money.withdraw(user=world.bob, asset=btc, amount=Decimal("0.1"), note="to bob-wallet-9c1")
    totp = two_factor_on(world.alice)
    alice = session_for(world.alice)
    assert alice.get("/api/v1/withdrawals").json() == []
    before = others_state(world)
    alice_btc = Balance.objects.get(user=world.alice, asset=btc).available
    paid = alice.post(
        "/api/v1/withdrawals",
        {"asset": "BTC", "amount": "0.5", "address": "alice-wallet", "otp_code": totp.now(), "user": world.bob.pk},
        format="json",
    )
    assert paid.status_code == 201
    # The body's "user" named Bob; the money left Alice's balance, and only hers.
    assert Balance.objects.get(user=world.alice, asset=btc).available == alice_btc - Decimal("0.5")
    assert others_state(world) == before
    listed = alice.get("/api/v1/withdrawals").json()
    assert [w["address"] for w in listed] == ["alice-wallet"]
    assert b"bob-wallet-9c1" not in alice.get("/api/v1/withdrawals").content


@pytest.mark.django_db(transaction=True)
def test_page_withdrawal_form_spends_and_shows_only_your_own(world, btc):
    money.withdraw(user=world.bob, asset=btc, amount=Decimal("0.1"), note="to bob-wallet-9c1")
    totp = two_factor_on(world.alice)
    alice = session_for(world.alice)
    page = alice.get("/account/withdraw/")
    assert {b.user_id for b in page.context["balances"]} == {world.alice.pk}
    assert page.context["withdrawals"] == [] and b"bob-wallet-9c1" not in page.content
    before = others_state(world)
    alice_btc = Balance.objects.get(user=world.alice, asset=btc).available
    form = {"asset": "BTC", "amount": "0.5", "address": "alice-wallet", "otp_code": totp.now(),
            "user": world.bob.pk, "user_id": world.bob.pk}  # fmt: skip
    paid = alice.post("/account/withdraw/", form)
    assert paid.status_code == 302, paid.content[:2000]
    # The form named Bob; the money left Alice's balance, and only hers.
    assert Balance.objects.get(user=world.alice, asset=btc).available == alice_btc - Decimal("0.5")
    assert others_state(world) == before
    shown = alice.get("/account/withdraw/")
    assert [w.address for w in shown.context["withdrawals"]] == ["alice-wallet"]
    assert b"bob-wallet-9c1" not in shown.content and b"bob-wallet-9c1" not in alice.get("/account/").content


@pytest.mark.django_db(transaction=True)
def test_two_factor_pages_act_on_your_own_device_only(world):
    bob_totp = two_factor_on(world.bob)
    bob_device = TwoFactorDevice.objects.values("pk", "confirmed_at", "secret_encrypted").get(user=world.bob)
    bob_codes = list(RecoveryCode.objects.filter(device__user=world.bob).values_list("pk", "code_hash", "used_at"))
    assert len(bob_codes) == 10
    alice = session_for(world.alice)
    page = alice.get("/account/2fa/")
    assert page.context["enabled"] is False and page.context["recovery_remaining"] == 0
    # Bob's current code cannot make new recovery codes from Alice's session, for Bob or for her.
    alice.post("/account/2fa/recovery-codes/", {"code": bob_totp.now(), "user": world.bob.pk})
    # Bob's current code, sent from Alice's session (naming Bob), turns nothing off.
    alice.post("/account/2fa/disable/", {"code": bob_totp.now(), "user": world.bob.pk})
    alice.post("/account/2fa/setup/", {"user": world.bob.pk})
    page = alice.get("/account/2fa/")
    assert page.context["secret"] != bob_totp.secret
    # Bob's code does not confirm the device Alice is setting up.
    alice.post("/account/2fa/confirm/", {"code": bob_totp.now(), "user": world.bob.pk})
    assert not money.two_factor_enabled(world.alice)
    assert TwoFactorDevice.objects.values("pk", "confirmed_at", "secret_encrypted").get(user=world.bob) == bob_device
    assert money.two_factor_enabled(world.bob)
    assert (
        list(RecoveryCode.objects.filter(device__user=world.bob).values_list("pk", "code_hash", "used_at")) == bob_codes
    )
    assert not RecoveryCode.objects.filter(device__user=world.alice).exists()


# --- the Binance-compatible API ---------------------------------------------------------------------


@pytest.fixture
def binance(world, client) -> BinanceClient:
    binance_symbols.forget()
    return BinanceClient(client, key=world.alice_key.key, secret=world.alice_secret)


def binance_error(response) -> tuple[int, int]:
    return response.status_code, response.json()["code"]


@pytest.mark.django_db(transaction=True)
def test_binance_order_by_another_users_id_is_unknown(world, binance):
    before = others_state(world)
    for lookup in ({"orderId": world.bob_live.pk}, {"origClientOrderId": world.bob_private.client_order_id}):
        assert binance_error(binance.get("/api/v3/order", symbol="BTCUSDT", **lookup)) == (400, -2013)
        assert binance_error(binance.delete("/api/v3/order", symbol="BTCUSDT", **lookup)) == (400, -2011)
    assert binance_error(binance.get("/api/v3/order", symbol="BTCUSDT", orderId=NEVER_USED_ID)) == (400, -2013)
    # The client id both use names Alice's order.
    assert binance.get("/api/v3/order", symbol="BTCUSDT", origClientOrderId="shared-id").json()["orderId"] == (
        world.alice_shared.pk
    )
    # Server-owned fields sent with a placement are not Binance parameters: they have no effect.
    placed = binance.post(
        "/api/v3/order", symbol="BTCUSDT", side="BUY", type="LIMIT", timeInForce="GTC", price="95", quantity="0.1",
        newOrderRespType="ACK", userId=world.bob.pk, user=world.bob.pk, status="FILLED", executedQty="0.1",
    )  # fmt: skip
    assert placed.status_code == 200, placed.content
    order = Order.objects.get(pk=placed.json()["orderId"])
    assert (order.user_id, order.status, order.filled_quantity) == (world.alice.pk, Order.Status.PENDING, 0)
    assert others_state(world) == before


@pytest.mark.django_db(transaction=True)
def test_binance_lists_show_only_your_own(world, binance):
    mine = set(Order.objects.filter(user=world.alice).values_list("pk", flat=True))
    assert {o["orderId"] for o in binance.get("/api/v3/openOrders").json()} == mine
    every_order = binance.get("/api/v3/allOrders", symbol="BTCUSDT", orderId=1).json()
    assert {o["orderId"] for o in every_order} == mine
    assert binance.get("/api/v3/myTrades", symbol="BTCUSDT").json() == []
    assert binance.get("/api/v3/myTrades", symbol="BTCUSDT", orderId=world.bob_filled.pk).json() == []
    assert binance.get("/api/v3/myTrades", symbol="BTCUSDT", fromId=1).json() == []
    account = binance.get("/api/v3/account").json()
    expected = {
        b.asset.symbol: plain(b.available) for b in Balance.objects.filter(user=world.alice).select_related("asset")
    }
    assert {b["asset"]: b["free"] for b in account["balances"]} == expected
    assert binance.get("/sapi/v1/asset/tradeFee").status_code == 200
    coins = {c["coin"]: c["free"] for c in binance.get("/sapi/v1/capital/config/getall").json()}
    assert coins == expected


@pytest.mark.django_db(transaction=True)
def test_binance_cancel_all_cancels_only_your_own(world, binance, settings):
    settings.EXCHANGE = {**settings.EXCHANGE, "BINANCE_RESULT_WAIT_S": 0.05}
    before = others_state(world)
    response = binance.delete("/api/v3/openOrders", symbol="BTCUSDT")
    assert response.status_code == 200
    assert {o["orderId"] for o in response.json()} == {world.alice_live.pk, world.alice_shared.pk}
    assert others_state(world) == before


@pytest.mark.django_db(transaction=True)
def test_binance_listen_key_of_another_user_does_not_exist(world, client):
    before = others_state(world)
    for method in ("put", "delete"):
        response = getattr(client, method)(
            f"/api/v3/userDataStream?listenKey={world.bob_listen_key}", HTTP_X_MBX_APIKEY=world.alice_key.key
        )
        assert binance_error(response) == (400, -1125)
    created = client.post("/api/v3/userDataStream", HTTP_X_MBX_APIKEY=world.alice_key.key).json()["listenKey"]
    assert created != world.bob_listen_key and listen_key_user_id(created) == world.alice.pk
    assert others_state(world) == before


# --- WebSockets -----------------------------------------------------------------------------------


@pytest_asyncio.fixture
async def _close_ws_db_connections():
    yield
    await sync_to_async(connections.close_all)()


async def ws_connect(path: str, headers=None) -> WebsocketCommunicator:
    ws = WebsocketCommunicator(application, path, headers=headers or [])
    connected, _ = await ws.connect()
    assert connected
    return ws


async def ask(ws: WebsocketCommunicator, message: dict) -> dict:
    await ws.send_to(text_data=json.dumps(message))
    return json.loads(await ws.receive_from(timeout=2))


def api_key_headers(key: ApiKey, secret: str) -> list[tuple[bytes, bytes]]:
    headers = signed_headers(key=key.key, secret=secret, method="GET", path="/ws")
    return [(name[5:].replace("_", "-").lower().encode(), value.encode()) for name, value in headers.items()]


PRIVATE = ["orders", "fills", "balances"]


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
@pytest.mark.usefixtures("_close_ws_db_connections")
async def test_ws_private_events_reach_only_their_owner(market, alice, bob, btc, usdt):
    carol = await sync_to_async(UserFactory)(username="carol")
    await sync_to_async(fund)(carol, usdt, Decimal(1000))
    alice_key, alice_secret = await sync_to_async(api_key_create)(user=alice)
    bob_key, bob_secret = await sync_to_async(api_key_create)(user=bob)
    alice_ws = await ws_connect("/ws", await sync_to_async(api_key_headers)(alice_key, alice_secret))
    bob_ws = await ws_connect("/ws", await sync_to_async(api_key_headers)(bob_key, bob_secret))
    for ws in (alice_ws, bob_ws):
        assert await ask(ws, {"method": "SUBSCRIBE", "params": PRIVATE, "id": 1}) == {"result": None, "id": 1}
    # Bob sells to Carol, and gets a deposit: order, fill and balance events, all Bob's or Carol's.
    engine = EngineDriver([market])
    await sync_to_async(place_limit)(bob, market, "sell", "0.2", "120")
    await sync_to_async(place_limit)(carol, market, "buy", "0.2", "120")
    await sync_to_async(engine.drain)()
    await sync_to_async(money.deposit)(user=bob, asset=btc, amount=Decimal("1"))
    bob_frames = []
    while not await bob_ws.receive_nothing(timeout=0.5):
        bob_frames.append(json.loads(await bob_ws.receive_from()))
    assert {f["stream"] for f in bob_frames} == set(PRIVATE)
    assert await alice_ws.receive_nothing(timeout=0.5)
    await alice_ws.disconnect()
    await bob_ws.disconnect()


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
@pytest.mark.usefixtures("_close_ws_db_connections")
async def test_ws_streams_naming_another_user_are_refused(market, alice, bob):
    alice_key, alice_secret = await sync_to_async(api_key_create)(user=alice)
    ws = await ws_connect("/ws", await sync_to_async(api_key_headers)(alice_key, alice_secret))
    names = [f"orders@{bob.pk}", "orders@bob", f"user.{bob.pk}", f"balances@{bob.pk}", f"fills:{bob.pk}",
             "fills@BTC_USDT", f"orders@{bob.username}@BTC_USDT"]  # fmt: skip
    for number, name in enumerate(names):
        reply = await ask(ws, {"method": "SUBSCRIBE", "params": [name], "id": number})
        assert reply["error"]["code"] == "unknown_stream", name
    assert await ask(ws, {"method": "LIST_SUBSCRIPTIONS", "id": 99}) == {"result": [], "id": 99}
    await ws.disconnect()


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
@pytest.mark.usefixtures("_close_ws_db_connections")
async def test_ws_binance_api_refuses_another_users_listen_key(market, alice, bob):
    alice_key, _ = await sync_to_async(api_key_create)(user=alice)
    bob_listen_key = await sync_to_async(compat_services.listen_key_create)(user=bob)
    ws = await ws_connect("/binance/ws-api/v3")
    for number, method in enumerate(("userDataStream.ping", "userDataStream.stop")):
        params = {"apiKey": alice_key.key, "listenKey": bob_listen_key}
        reply = await ask(ws, {"id": number, "method": method, "params": params})
        assert (reply["status"], reply["error"]["code"]) == (400, -1125)
    # A signed subscription is always to the signer's own events.
    signed = {"apiKey": alice_key.key, "timestamp": now_ms()}
    signed["signature"] = binance_signature("wrong-secret", "&".join(f"{k}={signed[k]}" for k in sorted(signed)))
    refused = await ask(ws, {"id": 5, "method": "userDataStream.subscribe.signature", "params": signed})
    assert refused["status"] == 400
    assert await sync_to_async(listen_key_user_id)(bob_listen_key) == bob.pk
    await ws.disconnect()


# --- WebSocket origin and anonymous clients (see also marketdata/tests/test_consumer.py) --------------

WS_PATHS = ["/ws", "/binance/ws", "/binance/ws/btcusdt@trade", "/binance/stream?streams=btcusdt@trade",
            "/binance/ws-api/v3"]  # fmt: skip


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
@pytest.mark.usefixtures("_close_ws_db_connections")
@pytest.mark.parametrize("path", WS_PATHS)
async def test_ws_a_foreign_origin_is_refused_on_every_route(market, alice, client, path):
    await sync_to_async(client.force_login)(alice)
    cookie = f"sessionid={client.cookies['sessionid'].value}".encode()
    foreign = WebsocketCommunicator(
        application, path, headers=[(b"origin", b"https://evil.example"), (b"host", b"localhost"), (b"cookie", cookie)]
    )
    connected, _ = await foreign.connect()
    assert not connected
    own = WebsocketCommunicator(application, path, headers=[(b"origin", b"http://localhost"), (b"host", b"localhost")])
    connected, _ = await own.connect()
    assert connected
    await own.disconnect()


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
@pytest.mark.usefixtures("_close_ws_db_connections")
async def test_ws_anonymous_clients_get_no_private_stream(market, alice, bob, client):
    """Anonymous (or a session cookie without Origin, i.e. not a browser): every private stream is refused."""
    await sync_to_async(client.force_login)(bob)
    cookie = f"sessionid={client.cookies['sessionid'].value}".encode()
    for headers in ([], [(b"cookie", cookie)]):
        ws = await ws_connect("/ws", headers)
        for number, name in enumerate(PRIVATE):
            reply = await ask(ws, {"method": "SUBSCRIBE", "params": [name], "id": number})
            assert reply["error"]["code"] == "unauthenticated", name
        assert await ask(ws, {"method": "LIST_SUBSCRIPTIONS", "id": 9}) == {"result": [], "id": 9}
        await ws.disconnect()


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
@pytest.mark.usefixtures("_close_ws_db_connections")
async def test_ws_binance_streams_give_no_user_data_without_the_owners_listen_key(market, alice, bob, usdt):
    bob_listen_key = await sync_to_async(compat_services.listen_key_create)(user=bob)
    guessed = "0" * 60  # well-formed, owned by nobody
    ws = await ws_connect(f"/binance/ws/{guessed}")
    live = await ask(ws, {"method": "SUBSCRIBE", "params": [bob_listen_key], "id": 1})
    assert live["error"]["code"] == 2  # listen keys open a stream only in the URL, never by a live SUBSCRIBE
    assert await ask(ws, {"method": "LIST_SUBSCRIPTIONS", "id": 2}) == {"result": [], "id": 2}
    await sync_to_async(place_limit)(bob, market, "buy", "0.1", "99")
    await sync_to_async(EngineDriver([market]).drain)()
    await sync_to_async(money.deposit)(user=bob, asset=usdt, amount=Decimal("1"))
    assert await ws.receive_nothing(timeout=0.5)
    await ws.disconnect()
