"""The order endpoints over HTTP: placing, reading, cancelling, listing, and who may see what.

Market BTC_USDT: tick 0.01, lot 0.001, min notional 1; alice and bob hold 10 BTC and 100000 USDT.
"""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.models import Balance, LedgerEntry
from marketdata.broadcast import publish_reference_prices
from markets.services import market_set_status
from orders.models import Order, Trade
from tests.factories import AssetFactory, MarketFactory, UserFactory
from tests.invariants import assert_exchange_invariants

D = Decimal
S = Order.Status

pytestmark = pytest.mark.django_db


def client_for(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


@pytest.fixture
def client():
    return APIClient()


@pytest.fixture
def as_alice(alice):
    return client_for(alice)


@pytest.fixture
def as_bob(bob):
    return client_for(bob)


@pytest.fixture
def eth_usdt(usdt):
    return MarketFactory(base=AssetFactory(symbol="ETH"), quote=usdt)


def limit(**fields) -> dict:
    return {"market": "BTC_USDT", "side": "buy", "type": "limit", "price": "100", "quantity": "1", **fields}


def post_raw(client, body: str | bytes, content_type: str = "application/json"):
    return client.post("/api/v1/orders", data=body, content_type=content_type)


def assert_error(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.content
    body = response.json()
    assert set(body) == {"code", "message", "details"}, body
    assert body["code"] == code and body["message"], body
    return body


def snapshot():
    return (
        list(Order.objects.order_by("pk").values_list("pk", "status", "cancel_requested_at")),
        sorted(Balance.objects.values_list("user_id", "asset_id", "available", "locked")),
        LedgerEntry.objects.count(),
    )


_rows = 0


def order_row(user, market, *, status=S.PENDING, side="buy", price="100", quantity="1", **fields) -> Order:
    """An order row written directly (no funds held): for reads and cancel requests, which move no money."""
    global _rows
    _rows += 1
    return Order.objects.create(
        user=user,
        market=market,
        client_order_id=fields.pop("client_order_id", None) or f"row-{_rows}",
        side=side,
        type="limit",
        price=D(price),
        quantity=D(quantity),
        status=status,
        **fields,
    )


AMOUNT_FIELDS = ("price", "quantity", "quote_quantity", "protection_price", "filled_quantity", "filled_quote",
                 "locked_amount")  # fmt: skip


def assert_amounts_are_strings(order: dict) -> None:
    for name in AMOUNT_FIELDS:
        assert order[name] is None or isinstance(order[name], str), (name, order[name])


# --- placing --------------------------------------------------------------------------------


def test_place_limit_order(as_alice, alice, market, usdt):
    response = as_alice.post(
        "/api/v1/orders",
        limit(side="BUY", type="LIMIT", price="100.5", quantity="2", client_order_id="bot-1:a"),
        format="json",
    )

    assert response.status_code == 201, response.content
    body = response.json()
    assert_amounts_are_strings(body)
    assert body | {"id": None, "created_at": None, "updated_at": None} == {
        "id": None, "client_order_id": "bot-1:a", "market": "BTC_USDT", "side": "buy", "type": "limit",
        "time_in_force": "gtc", "stp_mode": "none", "price": "100.5", "quantity": "2", "quote_quantity": None,
        "protection_price": None, "status": "pending", "filled_quantity": "0", "filled_quote": "0",
        "locked_amount": "201", "end_reason": "", "cancel_requested": False, "created_at": None, "updated_at": None,
    }  # fmt: skip
    order = Order.objects.get(pk=body["id"])
    assert order.user == alice and order.locked_amount == D(201)
    assert Balance.objects.get(user=alice, asset=usdt).locked == D(201)
    assert as_alice.get(f"/api/v1/orders/{order.pk}").json()["id"] == order.pk
    assert_exchange_invariants()


@pytest.mark.parametrize(
    ("fields", "locked"),
    [
        ({"side": "sell", "type": "limit_maker", "price": "100", "quantity": "0.5"}, "0.5"),
        ({"side": "sell", "type": "market", "price": None, "quantity": "0.5"}, "0.5"),
        ({"side": "buy", "type": "market", "price": None, "quantity": None, "quote_quantity": "25.5"}, "25.5"),
        ({"side": "buy", "type": "market", "price": None, "quantity": "1"}, "105"),
    ],
    ids=["limit_maker", "market-sell", "market-buy-quote", "market-buy-quantity"],
)
def test_place_other_order_types(as_alice, market, fields, locked):
    publish_reference_prices(symbol="BTC_USDT", best_bid=None, best_ask=D("100"), last=None)
    response = as_alice.post("/api/v1/orders", limit(**fields), format="json")
    assert response.status_code == 201, response.content
    assert response.json()["locked_amount"] == locked
    assert_exchange_invariants()


def test_a_json_float_price_is_parsed_exactly(as_alice, market):
    body = '{"market": "btc_usdt", "side": "buy", "type": "limit", "price": 0.1, "quantity": 10}'
    response = post_raw(as_alice, body)
    assert response.status_code == 201, response.content
    assert response.json()["price"] == "0.1" and response.json()["locked_amount"] == "1"
    assert Order.objects.get().price == D("0.1")


@pytest.mark.parametrize(
    ("number", "code", "detail"),
    [
        # As floats these would be 100.00499999999999545 and 0.1000000000000000055.
        ("100.005", "price_not_on_tick", {"price": "100.005", "tick_size": "0.01"}),
        ("0.1", "below_min_notional", {"notional": "0.1", "min_notional": "1"}),
    ],
)
def test_json_numbers_reach_the_service_as_exact_decimals(as_alice, market, number, code, detail):
    body = f'{{"market": "BTC_USDT", "side": "buy", "type": "limit", "price": {number}, "quantity": 1}}'
    response = post_raw(as_alice, body)
    body = assert_error(response, 400, code)
    assert body["details"] == detail


def test_an_order_fresh_from_create_serializes(alice, market):
    """What POST /orders does with the order place_order returns, isolated from the locking bug."""
    from orders.api import OrderSerializer

    order = order_row(alice, market)
    assert OrderSerializer(order).data["filled_quantity"] == "0"


SERVICE_REFUSALS = [
    # (fields over limit(), code)
    ({"price": "100.001"}, "price_not_on_tick"),
    ({"quantity": "0.0001"}, "quantity_not_on_lot"),
    ({"price": "1", "quantity": "0.5"}, "below_min_notional"),
    ({"price": "0"}, "must_be_positive"),
    ({"price": "-1"}, "must_be_positive"),
    ({"quantity": "0"}, "must_be_positive"),
    ({"quantity": -1}, "must_be_positive"),
    ({"price": "1e18"}, "number_too_large"),
    ({"price": "10000000000", "quantity": "100000000"}, "number_too_large"),
    ({"quantity": "1000000000.001"}, "quantity_too_large"),
    ({"price": "100000", "quantity": "1.001"}, "insufficient_funds"),
    ({"side": "sell", "quantity": "10.001"}, "insufficient_funds"),
    ({"price": None}, "missing_price_or_quantity"),
    ({"quantity": None}, "missing_price_or_quantity"),
    ({"type": "market"}, "price_not_allowed"),
    ({"type": "market", "price": None, "quantity": None}, "missing_quantity"),
    ({"type": "market", "price": None, "quote_quantity": "100"}, "missing_quantity"),
    ({"quote_quantity": "100"}, "quote_quantity_not_allowed"),
    ({"type": "market", "side": "sell", "price": None, "quantity": None, "quote_quantity": "100"},
     "quote_quantity_not_allowed"),
    ({"type": "market", "price": None, "quantity": None, "quote_quantity": "10.123456789"}, "too_many_decimals"),
    ({"type": "market", "price": None}, "no_reference_price"),
    ({"type": "limit_maker", "time_in_force": "IOC"}, "invalid_time_in_force"),
]  # fmt: skip


@pytest.mark.parametrize(("fields", "code"), SERVICE_REFUSALS, ids=[c for _, c in SERVICE_REFUSALS])
def test_service_refusals_over_http(as_alice, market, fields, code):
    before = snapshot()
    assert_error(as_alice.post("/api/v1/orders", limit(**fields), format="json"), 400, code)
    assert snapshot() == before
    assert_exchange_invariants()


def test_insufficient_funds_details(as_alice, market):
    response = as_alice.post("/api/v1/orders", limit(price="50000", quantity="2.5"), format="json")
    body = assert_error(response, 400, "insufficient_funds")
    assert body["details"] == {"asset": "USDT", "required": "125000"}


def test_halted_market_is_409(as_alice, market):
    market_set_status(market=market, status="halted")
    before = snapshot()
    body = assert_error(as_alice.post("/api/v1/orders", limit(), format="json"), 409, "market_halted")
    assert body["details"] == {"market": "BTC_USDT"}
    assert snapshot() == before


def test_unknown_market_is_404(as_alice, market):
    assert_error(as_alice.post("/api/v1/orders", limit(market="DOGE_USDT"), format="json"), 404, "unknown_market")
    assert not Order.objects.exists()


def test_duplicate_client_order_id_is_409(as_alice, as_bob, alice, market):
    order_row(alice, market, client_order_id="dup-1")
    before = snapshot()
    response = as_alice.post("/api/v1/orders", limit(client_order_id="dup-1"), format="json")
    body = assert_error(response, 409, "duplicate_client_order_id")
    assert body["details"] == {"client_order_id": "dup-1"}
    assert snapshot() == before


INVALID_REQUESTS = [
    ({"side": "hold"}, "side"),
    ({"type": "stop_loss"}, "type"),
    ({"time_in_force": "day"}, "time_in_force"),
    ({"stp_mode": "sometimes"}, "stp_mode"),
    ({"client_order_id": "has space"}, "client_order_id"),
    ({"client_order_id": "slash/es"}, "client_order_id"),
    ({"client_order_id": "é"}, "client_order_id"),
    ({"client_order_id": ""}, "client_order_id"),
    ({"client_order_id": "x" * 65}, "client_order_id"),
    ({"price": "abc"}, "price"),
    ({"price": "NaN"}, "price"),
    ({"price": "Infinity"}, "price"),
    ({"price": True}, "price"),
    ({"price": [1]}, "price"),
    ({"quantity": {"value": 1}}, "quantity"),
    ({"quantity": "1" * 65}, "quantity"),
    ({"market": None}, "market"),
    ({"side": None}, "side"),
]


@pytest.mark.parametrize(("fields", "field"), INVALID_REQUESTS, ids=[repr(f)[:40] for f, _ in INVALID_REQUESTS])
def test_invalid_fields_are_invalid_request(as_alice, market, fields, field):
    before = snapshot()
    body = assert_error(as_alice.post("/api/v1/orders", limit(**fields), format="json"), 400, "invalid_request")
    assert field in body["details"]["fields"]
    assert body["message"].startswith(f"{field}: ")
    assert snapshot() == before


def test_missing_required_fields_are_listed(as_alice, market):
    body = assert_error(as_alice.post("/api/v1/orders", {}, format="json"), 400, "invalid_request")
    assert set(body["details"]["fields"]) == {"market", "side", "type"}


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ('{"market": "BTC_USDT", ', "malformed_request"),
        ("not json", "malformed_request"),
        ('{"market": "BTC_USDT", "side": "buy", "type": "limit", "price": NaN, "quantity": "1"}', "malformed_request"),
        (
            '{"market": "BTC_USDT", "side": "buy", "type": "limit", "price": Infinity, "quantity": "1"}',
            "malformed_request",
        ),
        (
            '{"market": "BTC_USDT", "side": "buy", "type": "limit", "price": "100", "quantity": -Infinity}',
            "malformed_request",
        ),
        (b'{"market": "\xff"}', "malformed_request"),
        ("[1, 2]", "invalid_request"),
        ('"a string"', "invalid_request"),
        ("null", "invalid_request"),
    ],
    ids=["truncated", "not-json", "NaN", "Infinity", "-Infinity", "not-utf8", "array", "string", "null"],
)
def test_bodies_that_are_not_an_order_object_are_400(as_alice, market, body, code):
    assert_error(post_raw(as_alice, body), 400, code)
    assert not Order.objects.exists()


def test_a_form_encoded_body_is_unsupported(as_alice, market):
    response = as_alice.post("/api/v1/orders", limit())  # multipart, not JSON
    assert_error(response, 415, "unsupported_media_type")
    assert not Order.objects.exists()


@pytest.mark.parametrize("method", ["get", "post"])
def test_anonymous_cannot_use_orders(client, market, method):
    response = getattr(client, method)("/api/v1/orders", limit(), format="json")
    assert_error(response, 401, "not_authenticated")
    assert not Order.objects.exists()


# --- reading and cancelling one order: only your own ----------------------------------------


def test_get_your_order_by_id_and_client_id(as_alice, alice, market):
    order = order_row(alice, market, client_order_id="mine.1", price="100.5", quantity="0.25")
    by_id = as_alice.get(f"/api/v1/orders/{order.pk}")
    assert by_id.status_code == 200
    body = by_id.json()
    assert body["id"] == order.pk and body["client_order_id"] == "mine.1"
    assert (body["price"], body["quantity"]) == ("100.5", "0.25")
    assert_amounts_are_strings(body)
    assert as_alice.get("/api/v1/orders/client/mine.1").json() == body


def test_missing_order_is_404(as_alice, market):
    assert_error(as_alice.get("/api/v1/orders/999999"), 404, "order_not_found")
    assert_error(as_alice.get("/api/v1/orders/client/nope"), 404, "order_not_found")


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/api/v1/orders/{id}"),
        ("get", "/api/v1/orders/client/{cid}"),
        ("delete", "/api/v1/orders/{id}"),
        ("delete", "/api/v1/orders/client/{cid}"),
    ],
)
def test_someone_elses_order_is_not_found(as_bob, alice, market, method, path):
    order = order_row(alice, market, client_order_id="alice-1")
    missing = getattr(as_bob, method)(path.format(id=999_999, cid="nope"))
    response = getattr(as_bob, method)(path.format(id=order.pk, cid="alice-1"))
    assert_error(response, 404, "order_not_found")
    # Exactly like a missing order: nothing tells bob the order exists.
    assert response.json()["code"] == missing.json()["code"] and response.json()["message"] == missing.json()["message"]
    order.refresh_from_db()
    assert order.cancel_requested_at is None


def test_same_client_order_id_for_two_users_shows_each_their_own(as_alice, as_bob, alice, bob, market):
    mine = order_row(alice, market, client_order_id="shared")
    theirs = order_row(bob, market, client_order_id="shared")
    assert as_alice.get("/api/v1/orders/client/shared").json()["id"] == mine.pk
    assert as_bob.get("/api/v1/orders/client/shared").json()["id"] == theirs.pk
    as_bob.delete("/api/v1/orders/client/shared")
    assert Order.objects.get(pk=mine.pk).cancel_requested_at is None
    assert Order.objects.get(pk=theirs.pk).cancel_requested_at is not None


@pytest.mark.parametrize("by", ["id", "client"])
def test_cancel_your_order_is_202_and_idempotent(as_alice, alice, market, by):
    order = order_row(alice, market, client_order_id="c-1", status=S.OPEN)
    path = f"/api/v1/orders/{order.pk}" if by == "id" else "/api/v1/orders/client/c-1"

    first = as_alice.delete(path)
    assert first.status_code == 202
    assert first.json()["cancel_requested"] is True and first.json()["status"] == "open"
    requested_at = Order.objects.get(pk=order.pk).cancel_requested_at
    assert requested_at is not None

    again = as_alice.delete(path)
    assert again.status_code == 202 and again.json()["cancel_requested"] is True
    assert Order.objects.get(pk=order.pk).cancel_requested_at == requested_at


@pytest.mark.parametrize("status", [S.FILLED, S.CANCELLED, S.EXPIRED, S.REJECTED])
def test_cancelling_a_finished_order_is_409(as_alice, alice, market, status):
    order = order_row(alice, market, status=status)
    body = assert_error(as_alice.delete(f"/api/v1/orders/{order.pk}"), 409, "order_not_cancellable")
    assert body["details"] == {"order_id": order.pk, "status": status}


def test_anonymous_cannot_cancel(client, alice, market):
    order = order_row(alice, market)
    assert_error(client.delete(f"/api/v1/orders/{order.pk}"), 401, "not_authenticated")
    assert Order.objects.get(pk=order.pk).cancel_requested_at is None


# --- lists ----------------------------------------------------------------------------------


@pytest.fixture
def alices_orders(alice, bob, market, eth_usdt):
    """Alice's orders in both markets, in creation order, and one of bob's."""
    orders = {
        "pending": order_row(alice, market, status=S.PENDING),
        "open": order_row(alice, market, status=S.OPEN),
        "partial": order_row(alice, market, status=S.PARTIALLY_FILLED, filled_quantity=D("0.5")),
        "filled": order_row(alice, market, status=S.FILLED, filled_quantity=D(1)),
        "cancelled": order_row(alice, market, status=S.CANCELLED),
        "eth_open": order_row(alice, eth_usdt, status=S.OPEN),
        "eth_filled": order_row(alice, eth_usdt, status=S.FILLED, filled_quantity=D(1)),
    }
    order_row(bob, market, status=S.OPEN)
    order_row(bob, market, status=S.FILLED, filled_quantity=D(1))
    return orders


def ids(response) -> list[int]:
    body = response.json()
    return [o["id"] for o in (body["results"] if isinstance(body, dict) else body)]


def test_open_orders_are_your_live_ones_newest_first(as_alice, alices_orders):
    o = alices_orders
    response = as_alice.get("/api/v1/orders/open")
    assert response.status_code == 200
    assert ids(response) == [o["eth_open"].pk, o["partial"].pk, o["open"].pk, o["pending"].pk]


@pytest.mark.parametrize("market_param", ["BTC_USDT", "btc_usdt"])
def test_open_orders_of_one_market(as_alice, alices_orders, market_param):
    o = alices_orders
    response = as_alice.get("/api/v1/orders/open", {"market": market_param})
    assert ids(response) == [o["partial"].pk, o["open"].pk, o["pending"].pk]


def test_open_orders_of_an_unknown_market_is_404(as_alice, alices_orders):
    assert_error(as_alice.get("/api/v1/orders/open", {"market": "NOPE"}), 404, "unknown_market")


def test_bob_sees_none_of_alices_orders(as_bob, bob, alices_orders):
    bobs = Order.objects.filter(user=bob)
    assert set(ids(as_bob.get("/api/v1/orders/open"))) == set(bobs.filter(status=S.OPEN).values_list("pk", flat=True))
    assert set(ids(as_bob.get("/api/v1/orders"))) == set(bobs.values_list("pk", flat=True))
    assert ids(as_bob.get("/api/v1/orders", {"market": "ETH_USDT"})) == []


def test_history_is_all_your_orders_newest_first(as_alice, alices_orders):
    response = as_alice.get("/api/v1/orders")
    assert response.status_code == 200
    assert set(response.json()) == {"next", "previous", "results"}
    assert ids(response) == sorted((o.pk for o in alices_orders.values()), reverse=True)
    for order in response.json()["results"]:
        assert_amounts_are_strings(order)


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"status": "filled"}, ["eth_filled", "filled"]),
        ({"status": "open"}, ["eth_open", "open"]),
        ({"market": "ETH_USDT"}, ["eth_filled", "eth_open"]),
        ({"market": "BTC_USDT", "status": "cancelled"}, ["cancelled"]),
        ({"market": "BTC_USDT", "status": "expired"}, []),
    ],
)
def test_history_filters(as_alice, alices_orders, params, expected):
    response = as_alice.get("/api/v1/orders", params)
    assert response.status_code == 200
    assert ids(response) == [alices_orders[name].pk for name in expected]


def test_history_time_filters(as_alice, alices_orders):
    now = timezone.now()
    future = (now + dt.timedelta(hours=1)).isoformat()
    past = (now - dt.timedelta(hours=1)).isoformat()
    assert ids(as_alice.get("/api/v1/orders", {"start": future})) == []
    assert len(ids(as_alice.get("/api/v1/orders", {"start": past, "end": future}))) == len(alices_orders)


@pytest.mark.parametrize(
    ("params", "field", "status", "code"),
    [
        ({"status": "bogus"}, "status", 400, "invalid_request"),
        ({"start": "yesterday"}, "start", 400, "invalid_request"),
        ({"market": "NOPE"}, None, 404, "unknown_market"),
    ],
)
def test_history_bad_filters(as_alice, alices_orders, params, field, status, code):
    body = assert_error(as_alice.get("/api/v1/orders", params), status, code)
    if field:
        assert field in body["details"]["fields"]


def test_history_cursor_pagination(as_alice, alices_orders):
    expected = sorted((o.pk for o in alices_orders.values()), reverse=True)
    seen, url, pages = [], "/api/v1/orders?limit=3", 0
    while url:
        body = as_alice.get(url).json()
        assert len(body["results"]) <= 3
        seen += [o["id"] for o in body["results"]]
        url, pages = body["next"], pages + 1
    assert seen == expected and pages == 3


def test_history_pagination_with_a_filter_keeps_the_filter(as_alice, alices_orders):
    first = as_alice.get("/api/v1/orders", {"market": "BTC_USDT", "limit": 2}).json()
    second = as_alice.get(first["next"]).json()
    third = as_alice.get(second["next"]).json()
    got = [o["id"] for page in (first, second, third) for o in page["results"]]
    btc = ["cancelled", "filled", "partial", "open", "pending"]
    assert got == [alices_orders[name].pk for name in btc] and third["next"] is None


# --- cancel-all -----------------------------------------------------------------------------


def test_cancel_all_in_one_market(as_alice, alices_orders):
    o = alices_orders
    response = as_alice.post("/api/v1/orders/cancel-all", {"market": "btc_usdt"}, format="json")
    assert response.status_code == 202
    assert response.json() == {"market": "BTC_USDT", "order_ids": [o["pending"].pk, o["open"].pk, o["partial"].pk]}
    requested = set(Order.objects.filter(cancel_requested_at__isnull=False).values_list("pk", flat=True))
    assert requested == {o["pending"].pk, o["open"].pk, o["partial"].pk}


def test_cancel_all_with_nothing_live(as_bob, market):
    response = as_bob.post("/api/v1/orders/cancel-all", {"market": "BTC_USDT"}, format="json")
    assert response.status_code == 202 and response.json() == {"market": "BTC_USDT", "order_ids": []}


@pytest.mark.parametrize(
    ("data", "status", "code"), [({}, 400, "invalid_request"), ({"market": "NOPE"}, 404, "unknown_market")]
)
def test_cancel_all_bad_requests(as_alice, alices_orders, data, status, code):
    assert_error(as_alice.post("/api/v1/orders/cancel-all", data, format="json"), status, code)
    assert not Order.objects.filter(cancel_requested_at__isnull=False).exists()


def test_cancel_all_is_post_only(as_alice, market):
    assert_error(as_alice.get("/api/v1/orders/cancel-all"), 405, "method_not_allowed")


# --- trades ---------------------------------------------------------------------------------


@pytest.fixture
def trades(alice, market):
    """Two trades between alice (buyer, taker) and carol (seller, maker), and none of bob's."""
    carol = UserFactory(username="carol")
    made = []
    for n in (1, 2):
        buy = order_row(alice, market, status=S.FILLED, filled_quantity=D(1), filled_quote=D(100))
        sell = order_row(carol, market, side="sell", status=S.FILLED, filled_quantity=D(1), filled_quote=D(100))
        trade = Trade.objects.create(
            market=market,
            trade_id=n,
            price=D(100),
            quantity=D(1),
            quote_quantity=D(100),
            taker_side="buy",
            buy_order=buy,
            sell_order=sell,
            buyer=alice,
            seller=carol,
            buyer_fee=D("0.002"),
            seller_fee=D("0.1"),
            executed_at=timezone.now(),
        )
        made.append(trade)
    return carol, made


def test_your_trades_show_your_side_and_fee(as_alice, trades):
    _, made = trades
    response = as_alice.get("/api/v1/trades")
    assert response.status_code == 200
    results = response.json()["results"]
    assert [t["id"] for t in results] == [2, 1]
    latest = results[0]
    assert {k: v for k, v in latest.items() if k != "executed_at"} == {
        "id": 2, "market": "BTC_USDT", "price": "100", "quantity": "1", "quote_quantity": "100", "side": "buy",
        "order_id": made[1].buy_order_id, "fee": "0.002", "fee_asset": "BTC", "is_maker": False,
    }  # fmt: skip


def test_the_other_side_sees_its_own_view_of_the_trade(trades):
    carol, made = trades
    latest = client_for(carol).get("/api/v1/trades", {"limit": 1}).json()
    assert len(latest["results"]) == 1 and latest["next"]
    trade = latest["results"][0]
    assert trade["side"] == "sell" and trade["order_id"] == made[1].sell_order_id and trade["is_maker"] is True
    assert (trade["fee"], trade["fee_asset"]) == ("0.1", "USDT")


def test_someone_elses_trades_are_not_listed(as_bob, trades):
    assert as_bob.get("/api/v1/trades").json()["results"] == []
    assert as_bob.get("/api/v1/trades", {"market": "BTC_USDT"}).json()["results"] == []


def test_trades_market_filter(as_alice, trades, eth_usdt):
    assert [t["id"] for t in as_alice.get("/api/v1/trades", {"market": "BTC_USDT"}).json()["results"]] == [2, 1]
    assert as_alice.get("/api/v1/trades", {"market": "ETH_USDT"}).json()["results"] == []
    assert_error(as_alice.get("/api/v1/trades", {"market": "NOPE"}), 404, "unknown_market")


def test_response_bodies_are_json_with_no_float_amounts(as_alice, alices_orders):
    """Amounts travel as strings: parse the raw body and find no JSON number among them."""
    raw = json.loads(as_alice.get("/api/v1/orders/open").content)
    for order in raw:
        assert_amounts_are_strings(order)
