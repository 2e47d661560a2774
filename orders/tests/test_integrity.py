"""Order entry's market-integrity refusals: price band, maximum notional, open-order cap,
cancel-only and halted markets, market orders without a reference price.

Each is checked at the service (code, message, details, nothing written), over the REST
API (4xx in the one error shape, nothing changed), and where it matters on the order page.
Market BTC_USDT: tick 0.01, lot 0.001, min notional 1; alice and bob hold 10 BTC and 100000 USDT.
"""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.test import Client
from rest_framework.test import APIClient

from accounts.models import Balance, LedgerEntry
from exchange_site.errors import ApplicationError
from marketdata.broadcast import publish_reference_prices
from markets.models import Market
from markets.services import market_set_status
from orders import services
from orders.models import OpenOrderCount, Order
from tests.invariants import assert_exchange_invariants

D = Decimal
pytestmark = pytest.mark.django_db


def place(user, market, side="buy", type="limit", **amounts) -> Order:
    fields = {k: D(v) if isinstance(v, str) and k in {"price", "quantity", "quote_quantity"} else v
              for k, v in amounts.items()}  # fmt: skip
    return services.place_order(user=user, market=market, request=services.OrderRequest(side, type, **fields))


def refused(user, market, side="buy", type="limit", **amounts) -> ApplicationError:
    before = snapshot()
    with pytest.raises(ApplicationError) as refusal:
        place(user, market, side, type, **amounts)
    assert snapshot() == before, "a refused order changed something"
    assert refusal.value.message
    return refusal.value


def snapshot():
    return (
        list(Order.objects.order_by("pk").values_list("pk", "status")),
        sorted(Balance.objects.values_list("user_id", "asset_id", "available", "locked")),
        LedgerEntry.objects.count(),
        sorted(OpenOrderCount.objects.values_list("user_id", "market_id", "count")),
    )


def reference(*, bid=None, ask=None, last=None) -> None:
    publish_reference_prices(
        symbol="BTC_USDT",
        best_bid=None if bid is None else D(bid),
        best_ask=None if ask is None else D(ask),
        last=None if last is None else D(last),
    )


# --- limit price band (LIMIT_PRICE_BAND = 50%) ---------------------------------------------------


@pytest.mark.parametrize(
    ("side", "price", "ok"),
    [("buy", "150", True), ("buy", "150.01", False), ("sell", "50", True), ("sell", "49.99", False),
     ("buy", "49.99", False), ("sell", "150.01", False), ("buy", "1000", False)],
)  # fmt: skip
def test_limit_orders_outside_the_band_around_the_last_trade_are_refused(market, alice, side, price, ok):
    reference(bid="99", ask="101", last="100")
    if ok:
        place(alice, market, side, price=price, quantity="0.1")
        return
    error = refused(alice, market, side, price=price, quantity="0.1")
    assert error.code == "price_outside_band" and error.status_code == 400
    assert error.details == {"price": price, "min_price": "50", "max_price": "150", "reference_price": "100"}
    assert "outside the allowed band 50 to 150" in error.message


def test_without_a_trade_the_band_is_centred_on_the_middle_of_the_book(market, alice):
    reference(bid="90", ask="110")
    error = refused(alice, market, "buy", price="151", quantity="0.1")
    assert error.details["reference_price"] == "100"
    place(alice, market, "buy", price="150", quantity="0.1")


def test_with_only_one_side_the_band_is_centred_on_it(market, alice):
    reference(ask="10")
    assert refused(alice, market, "buy", price="15.01", quantity="1").code == "price_outside_band"
    place(alice, market, "buy", price="15", quantity="1")


def test_a_market_with_no_price_yet_takes_any_limit_price(market, alice):
    place(alice, market, "sell", price="12345", quantity="0.1")
    place(alice, market, "buy", price="0.01", quantity="100")


def test_the_band_is_a_setting(market, alice, settings):
    settings.EXCHANGE = {**settings.EXCHANGE, "LIMIT_PRICE_BAND": D("0.1")}
    reference(last="100")
    error = refused(alice, market, "buy", price="110.01", quantity="0.1")
    assert (error.code, error.details["max_price"]) == ("price_outside_band", "110")


# --- market orders: protection for every kind, and no reference at all ------------------------


@pytest.mark.parametrize(
    ("side", "fields", "protection"),
    [("buy", {"quantity": "1"}, "105"), ("buy", {"quote_quantity": "50"}, "105"), ("sell", {"quantity": "1"}, "95")],
    ids=["buy_by_quantity", "buy_by_quote", "sell"],
)
def test_every_market_order_gets_a_protection_price(market, alice, side, fields, protection):
    reference(bid="100", ask="100", last="100")
    assert place(alice, market, side, "market", **fields).protection_price == D(protection)


@pytest.mark.parametrize(
    ("side", "fields"),
    [("buy", {"quantity": "1"}), ("buy", {"quote_quantity": "50"}), ("sell", {"quantity": "1"})],
    ids=["buy_by_quantity", "buy_by_quote", "sell"],
)
def test_market_orders_in_a_market_without_any_price_are_refused(market, alice, side, fields):
    error = refused(alice, market, side, "market", **fields)
    assert error.code == "no_reference_price" and error.details == {"market": "BTC_USDT"}


# --- maximum notional -----------------------------------------------------------------------------


@pytest.fixture
def capped_market(market):
    Market.objects.filter(pk=market.pk).update(max_notional=D(1000))
    market.refresh_from_db()
    return market


@pytest.mark.parametrize(
    ("side", "type_", "fields"),
    [
        ("buy", "limit", {"price": "100", "quantity": "10.001"}),
        ("sell", "limit", {"price": "100", "quantity": "10.001"}),
        ("buy", "market", {"quote_quantity": "1000.01"}),
        ("buy", "market", {"quantity": "10.001"}),  # valued at the reference price
        ("sell", "market", {"quantity": "10.001"}),
    ],
)
def test_orders_above_the_maximum_notional_are_refused(capped_market, alice, side, type_, fields):
    reference(bid="100", ask="100", last="100")
    error = refused(alice, capped_market, side, type_, **fields)
    assert error.code == "above_max_notional" and error.details["max_notional"] == "1000"


def test_an_order_at_the_maximum_notional_is_accepted(capped_market, alice):
    place(alice, capped_market, "buy", price="100", quantity="10")
    assert_exchange_invariants()


# --- open-order cap -------------------------------------------------------------------------------


@pytest.fixture
def cap_of_three(settings):
    settings.EXCHANGE = {**settings.EXCHANGE, "MAX_OPEN_ORDERS": 3}


def test_the_fourth_open_order_is_refused_and_changes_nothing(market, eth_market, alice, cap_of_three):
    for price in ("100", "101", "102"):
        place(alice, market, "sell", price=price, quantity="1")
    error = refused(alice, market, "sell", price="103", quantity="1")
    assert (error.code, error.status_code) == ("too_many_open_orders", 409)
    assert error.details == {"market": "BTC_USDT", "max_open_orders": 3}
    place(alice, eth_market, "buy", price="10", quantity="1")  # the cap is per market
    assert OpenOrderCount.objects.get(user=alice, market=market).count == 3
    assert_exchange_invariants()


def test_a_batch_is_refused_order_by_order_past_the_cap(market, alice, cap_of_three):
    place(alice, market, "sell", price="100", quantity="1")
    requests = [(market, services.OrderRequest("sell", "limit", price=D(101 + i), quantity=D(1))) for i in range(4)]
    results = services.place_orders(user=alice, requests=requests)
    codes = [r.code if isinstance(r, ApplicationError) else "placed" for r in results]
    assert codes == ["placed", "placed", "too_many_open_orders", "too_many_open_orders"]
    assert OpenOrderCount.objects.get(user=alice, market=market).count == 3
    assert_exchange_invariants()


def test_lowering_the_cap_refuses_new_orders_until_enough_end(market, alice, settings):
    for price in ("100", "101", "102"):
        place(alice, market, "sell", price=price, quantity="1")
    settings.EXCHANGE = {**settings.EXCHANGE, "MAX_OPEN_ORDERS": 2}
    assert refused(alice, market, "sell", price="103", quantity="1").code == "too_many_open_orders"


# --- market status --------------------------------------------------------------------------------


def test_a_cancel_only_market_refuses_placing_and_accepts_cancels(market, alice):
    order = place(alice, market, "sell", price="100", quantity="1")
    market_set_status(market=market, status=Market.Status.CANCEL_ONLY)
    error = refused(alice, market, "sell", price="101", quantity="1")
    assert (error.code, error.status_code, error.details) == ("market_cancel_only", 409, {"market": "BTC_USDT"})
    assert services.request_cancel(user=alice, order_id=order.pk).cancel_requested_at is not None


def test_a_halted_market_accepts_cancel_requests(market, alice):
    order = place(alice, market, "sell", price="100", quantity="1")
    market_set_status(market=market, status=Market.Status.HALTED)
    assert refused(alice, market, "sell", price="101", quantity="1").code == "market_halted"
    assert services.request_cancel(user=alice, order_id=order.pk).cancel_requested_at is not None


# --- over the REST API and on the order page ------------------------------------------------------


@pytest.fixture
def eth_market(usdt):
    from tests.factories import AssetFactory, MarketFactory

    return MarketFactory(base=AssetFactory(symbol="ETH"), quote=usdt)


def api(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def body(**fields) -> dict:
    return {"market": "BTC_USDT", "side": "buy", "type": "limit", "price": "100", "quantity": "1", **fields}


@pytest.mark.parametrize(
    ("setup", "order", "status", "code"),
    [
        ("band", body(price="200"), 400, "price_outside_band"),
        ("max_notional", body(quantity="20"), 400, "above_max_notional"),
        ("cap", body(), 409, "too_many_open_orders"),
        ("cancel_only", body(), 409, "market_cancel_only"),
        ("halted", body(), 409, "market_halted"),
        ("none", body(type="market", price=None), 400, "no_reference_price"),
        ("none", body(type="market", price=None, quantity=None, quote_quantity="50"), 400, "no_reference_price"),
    ],
)
def test_each_integrity_refusal_over_the_api(market, alice, settings, setup, order, status, code):
    if setup == "band":
        reference(last="100")
    elif setup == "max_notional":
        Market.objects.filter(pk=market.pk).update(max_notional=D(1000))
    elif setup == "cap":
        settings.EXCHANGE = {**settings.EXCHANGE, "MAX_OPEN_ORDERS": 1}
        place(alice, market, "sell", price="120", quantity="1")
    elif setup in ("cancel_only", "halted"):
        market_set_status(market=market, status=setup)
    before = snapshot()
    response = api(alice).post("/api/v1/orders", {k: v for k, v in order.items() if v is not None}, format="json")
    assert response.status_code == status, response.content
    answer = response.json()
    assert set(answer) == {"code", "message", "details"} and answer["code"] == code and answer["message"]
    assert snapshot() == before


def test_the_order_page_shows_the_band_refusal_verbatim(market, alice):
    reference(last="100")
    client = Client()
    client.force_login(alice)
    response = client.post(
        "/orders/place/BTC_USDT/",
        {"side": "buy", "type": "limit", "time_in_force": "gtc", "price": "200", "quantity": "0.5"},
    )
    assert response.status_code == 400
    assert "Price 200 is outside the allowed band 50 to 150" in response.content.decode()
    assert not Order.objects.exists()


def test_limit_orders_reuse_a_recent_reference_and_market_orders_read_it_fresh(market, alice, settings):
    settings.EXCHANGE = {**settings.EXCHANGE, "LIMIT_BAND_REFERENCE_TTL_S": 60}
    services._band_references.clear()
    reference(bid="100", ask="100", last="100")
    place(alice, market, "buy", price="140", quantity="0.1")
    reference(bid="10", ask="10", last="10")  # the engine moved: the web process has not looked yet
    place(alice, market, "buy", price="140", quantity="0.1")  # judged by the copy it holds
    assert place(alice, market, "buy", "market", quantity="1").protection_price == D("10.50")  # fresh
    assert refused(alice, market, "buy", price="140", quantity="0.1").code == "price_outside_band"
    services._band_references.clear()
