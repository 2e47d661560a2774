"""Order entry (``orders.services.place_order``) and cancel requests, without the engine.

Market BTC_USDT: tick 0.01, lot 0.001, min notional 1; alice and bob hold 10 BTC and 100000 USDT.
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from accounts.models import Balance, LedgerEntry
from exchange_site.errors import ApplicationError
from marketdata.broadcast import publish_reference_prices
from markets.services import market_set_status
from orders import services
from orders.models import Order
from tests.factories import AssetFactory, MarketFactory, UserFactory
from tests.invariants import assert_exchange_invariants

D = Decimal
S = Order.Status

pytestmark = pytest.mark.django_db


def order_request(side="buy", type="limit", **amounts) -> services.OrderRequest:
    """An OrderRequest; amounts may be given as strings."""
    fields = {k: (D(v) if isinstance(v, str | int) and k in _AMOUNTS else v) for k, v in amounts.items()}
    return services.OrderRequest(side=side, type=type, **fields)


_AMOUNTS = {"price", "quantity", "quote_quantity"}


def place(user, market, side="buy", type="limit", **amounts) -> Order:
    return services.place_order(user=user, market=market, request=order_request(side, type, **amounts))


def bal(user, asset) -> tuple[Decimal, Decimal]:
    b = Balance.objects.filter(user=user, asset=asset).first()
    return (b.available, b.locked) if b else (D(0), D(0))


def snapshot():
    """What a refused placement must leave untouched."""
    return (
        list(Order.objects.order_by("pk").values_list("pk", "status", "locked_amount", "cancel_requested_at")),
        sorted(Balance.objects.values_list("user_id", "asset_id", "available", "locked")),
        LedgerEntry.objects.count(),
    )


def order_row(user, market, *, status=S.PENDING, side="buy", price="100", quantity="1", **fields) -> Order:
    """An order row written directly (no funds held): for cancel requests, which move no money."""
    return Order.objects.create(
        user=user,
        market=market,
        client_order_id=fields.pop("client_order_id", None) or f"row-{Order.objects.count() + 1}",
        side=side,
        type="limit",
        price=D(price),
        quantity=D(quantity),
        status=status,
        **fields,
    )


def lock_entries(order: Order) -> list[tuple]:
    return list(
        LedgerEntry.objects.filter(order=order)
        .order_by("id")
        .values_list("user_id", "asset_id", "bucket", "amount", "reason")
    )


# --- what each order type holds -------------------------------------------------------------


def test_limit_buy_locks_price_times_quantity_of_quote(market, alice, btc, usdt):
    order = place(alice, market, "buy", price="100.5", quantity="2")

    order.refresh_from_db()
    assert (order.status, order.type, order.time_in_force) == (S.PENDING, "limit", "gtc")
    assert order.locked_amount == D("201") and order.price == D("100.5") and order.quantity == D(2)
    assert order.client_order_id  # generated when the client gives none
    assert bal(alice, usdt) == (D("99799"), D("201"))
    assert bal(alice, btc) == (D(10), 0)
    assert lock_entries(order) == [
        (alice.id, usdt.id, "available", D("-201"), "order_lock"),
        (alice.id, usdt.id, "locked", D("201"), "order_lock"),
    ]
    assert_exchange_invariants()


def test_limit_sell_locks_quantity_of_base(market, alice, btc, usdt):
    order = place(alice, market, "sell", price="100", quantity="2.5", client_order_id="my-sell.1")

    assert order.client_order_id == "my-sell.1" and order.locked_amount == D("2.5")
    assert bal(alice, btc) == (D("7.5"), D("2.5"))
    assert bal(alice, usdt) == (D(100_000), 0)
    assert lock_entries(order) == [
        (alice.id, btc.id, "available", D("-2.5"), "order_lock"),
        (alice.id, btc.id, "locked", D("2.5"), "order_lock"),
    ]
    assert_exchange_invariants()


@pytest.mark.parametrize(("side", "locked_asset", "locked"), [("buy", "usdt", D("50")), ("sell", "btc", D("0.5"))])
def test_limit_maker_locks_like_a_limit(market, alice, side, locked_asset, locked, request):
    asset = request.getfixturevalue(locked_asset)
    order = place(alice, market, side, "limit_maker", price="100", quantity="0.5")

    assert (order.type, order.time_in_force, order.status) == ("limit_maker", "gtc", S.PENDING)
    assert order.locked_amount == locked
    assert bal(alice, asset)[1] == locked
    assert_exchange_invariants()


def test_market_sell_by_quantity_locks_the_quantity(market, alice, btc):
    publish_reference_prices(symbol="BTC_USDT", best_bid=D("100"), best_ask=None, last=None)
    order = place(alice, market, "sell", "market", quantity="1.234")

    assert (order.type, order.time_in_force, order.price) == ("market", "ioc", None)
    assert order.locked_amount == D("1.234") and order.protection_price == D("95.00")
    assert bal(alice, btc) == (D("8.766"), D("1.234"))
    assert_exchange_invariants()


def test_market_buy_by_quote_quantity_locks_exactly_that(market, alice, usdt):
    publish_reference_prices(symbol="BTC_USDT", best_bid=None, best_ask=D("100"), last=None)
    order = place(alice, market, "buy", "market", quote_quantity="150.12345678")

    assert (order.time_in_force, order.quantity, order.quote_quantity) == ("ioc", None, D("150.12345678"))
    assert order.locked_amount == D("150.12345678")
    assert order.protection_price == D("105.00")  # by quote too: the engine stops at the band
    assert bal(alice, usdt) == (D("99849.87654322"), D("150.12345678"))
    assert_exchange_invariants()


def test_market_buy_by_quantity_without_a_reference_price_is_refused(market, alice):
    before = snapshot()
    with pytest.raises(ApplicationError) as refused:
        place(alice, market, "buy", "market", quantity="1")
    assert refused.value.code == "no_reference_price"
    assert snapshot() == before


def test_market_buy_by_quantity_locks_at_the_protection_price(market, alice, usdt):
    publish_reference_prices(symbol="BTC_USDT", best_bid=None, best_ask=D("100"), last=None)
    order = place(alice, market, "buy", "market", quantity="2")

    assert order.protection_price == D("105.00")  # ceil-to-tick(100 x 1.05)
    assert order.locked_amount == D("210")
    assert bal(alice, usdt) == (D("99790"), D("210"))
    assert_exchange_invariants()


@pytest.mark.parametrize(
    ("best_ask", "last", "protection"),
    [
        ("100.01", None, "105.02"),  # 105.0105 rounded up to the tick
        (None, "200", "210.00"),  # no ask: the last trade price
        ("100", "300", "105.00"),  # the ask wins over the last trade
    ],
)
def test_market_buy_protection_price_is_rounded_up_to_the_tick(market, alice, best_ask, last, protection):
    publish_reference_prices(
        symbol="BTC_USDT",
        best_bid=None,
        best_ask=None if best_ask is None else D(best_ask),
        last=None if last is None else D(last),
    )
    order = place(alice, market, "buy", "market", quantity="1")
    assert order.protection_price == D(protection)
    assert order.locked_amount == D(protection)
    assert_exchange_invariants()


def test_market_buy_by_quantity_checks_min_notional_at_the_reference_price(market, alice):
    publish_reference_prices(symbol="BTC_USDT", best_bid=None, best_ask=D("100"), last=None)
    with pytest.raises(ApplicationError) as refused:
        place(alice, market, "buy", "market", quantity="0.009")  # 0.9 USDT at the reference
    assert refused.value.code == "below_min_notional"
    assert not Order.objects.exists()


# --- refusals -------------------------------------------------------------------------------

REFUSALS = [
    # (side, type, fields, code)
    ("buy", "limit", {"price": "100.001", "quantity": "1"}, "price_not_on_tick"),
    ("buy", "limit", {"price": "100", "quantity": "1.0001"}, "quantity_not_on_lot"),
    ("sell", "market", {"quantity": "0.0005"}, "quantity_not_on_lot"),
    ("buy", "limit", {"price": "1", "quantity": "0.999"}, "below_min_notional"),
    ("buy", "market", {"quote_quantity": "0.99"}, "below_min_notional"),
    ("buy", "limit", {"price": "0", "quantity": "1"}, "must_be_positive"),
    ("buy", "limit", {"price": "-100", "quantity": "1"}, "must_be_positive"),
    ("buy", "limit", {"price": "100", "quantity": "0"}, "must_be_positive"),
    ("sell", "limit", {"price": "100", "quantity": "-1"}, "must_be_positive"),
    ("buy", "limit", {"price": "-0", "quantity": "1"}, "must_be_positive"),
    ("buy", "market", {"quote_quantity": "0"}, "must_be_positive"),
    ("sell", "market", {"quantity": "-0.001"}, "must_be_positive"),
    ("buy", "limit", {"price": D("NaN"), "quantity": "1"}, "invalid_number"),
    ("buy", "limit", {"price": "100", "quantity": D("Infinity")}, "invalid_number"),
    ("buy", "limit", {"price": D("sNaN"), "quantity": "1"}, "invalid_number"),
    ("buy", "market", {"quote_quantity": D("NaN")}, "invalid_number"),
    ("sell", "market", {"quantity": D("-Infinity")}, "invalid_number"),
    ("buy", "limit", {"price": "1000000000000000000", "quantity": "1"}, "number_too_large"),
    ("buy", "limit", {"price": "1e30", "quantity": "1"}, "number_too_large"),
    ("buy", "limit", {"price": "100", "quantity": "1e18"}, "number_too_large"),
    ("buy", "limit", {"price": "10000000000", "quantity": "100000000"}, "number_too_large"),  # notional 1e18
    ("buy", "market", {"quote_quantity": "1e18"}, "number_too_large"),
    ("buy", "limit", {"price": "100", "quantity": "1000000000.001"}, "quantity_too_large"),
    ("sell", "market", {"quantity": "2000000000"}, "quantity_too_large"),
    ("buy", "limit", {"price": "100000", "quantity": "1.001"}, "insufficient_funds"),
    ("sell", "limit", {"price": "100", "quantity": "10.001"}, "insufficient_funds"),
    ("buy", "market", {"quote_quantity": "100000.01"}, "insufficient_funds"),
    ("sell", "market", {"quantity": "11"}, "insufficient_funds"),
    ("buy", "limit", {"quantity": "1"}, "missing_price_or_quantity"),
    ("buy", "limit", {"price": "100"}, "missing_price_or_quantity"),
    ("sell", "limit_maker", {"quantity": "1"}, "missing_price_or_quantity"),
    ("buy", "market", {"price": "100", "quote_quantity": "100"}, "price_not_allowed"),
    ("sell", "market", {"price": "100", "quantity": "1"}, "price_not_allowed"),
    ("buy", "market", {}, "missing_quantity"),
    ("buy", "market", {"quantity": "1", "quote_quantity": "100"}, "missing_quantity"),
    ("buy", "limit", {"price": "100", "quantity": "1", "quote_quantity": "100"}, "quote_quantity_not_allowed"),
    ("buy", "limit_maker", {"price": "100", "quantity": "1", "quote_quantity": "100"}, "quote_quantity_not_allowed"),
    ("sell", "market", {"quote_quantity": "100"}, "quote_quantity_not_allowed"),
    ("buy", "market", {"quote_quantity": "10.123456789"}, "too_many_decimals"),
    ("buy", "limit_maker", {"price": "100", "quantity": "1", "time_in_force": "ioc"}, "invalid_time_in_force"),
    ("sell", "limit_maker", {"price": "100", "quantity": "1", "time_in_force": "fok"}, "invalid_time_in_force"),
]


@pytest.mark.parametrize(("side", "type_", "fields", "code"), REFUSALS, ids=lambda v: v if isinstance(v, str) else None)
def test_refusals_have_a_code_and_write_nothing(market, alice, side, type_, fields, code):
    if type_ == "market":  # a price to protect market orders with (limit orders: no band check then)
        publish_reference_prices(symbol="BTC_USDT", best_bid=D("100"), best_ask=D("100.01"), last=None)
    before = snapshot()
    with pytest.raises(ApplicationError) as refused:
        place(alice, market, side, type_, **fields)
    assert refused.value.code == code, refused.value.message
    assert refused.value.status_code == 400
    assert snapshot() == before
    assert_exchange_invariants()


def test_insufficient_funds_says_what_was_needed(market, alice):
    with pytest.raises(ApplicationError) as refused:
        place(alice, market, "buy", price="50000", quantity="2.5")
    assert refused.value.code == "insufficient_funds"
    assert refused.value.details == {"asset": "USDT", "required": "125000"}


def test_a_user_who_never_held_the_asset_has_insufficient_funds(market, btc, usdt):
    carol = UserFactory(username="carol")
    with pytest.raises(ApplicationError) as refused:
        place(carol, market, "sell", price="100", quantity="1")
    assert refused.value.code == "insufficient_funds"
    assert not Order.objects.exists() and not Balance.objects.filter(user=carol).exists()


def test_halted_market_refuses_new_orders(market, alice):
    market_set_status(market=market, status="halted")
    before = snapshot()
    with pytest.raises(ApplicationError) as refused:
        place(alice, market, "sell", price="100", quantity="1")
    assert (refused.value.code, refused.value.status_code) == ("market_halted", 409)
    assert snapshot() == before


def test_a_resumed_market_accepts_orders_again(market, alice):
    market_set_status(market=market, status="halted")
    market_set_status(market=market, status="trading")
    assert place(alice, market, "sell", price="100", quantity="1").status == S.PENDING


def test_duplicate_client_order_id_is_refused_per_user(market, alice, bob, usdt):
    place(alice, market, "buy", price="100", quantity="1", client_order_id="abc")
    before = snapshot()
    with pytest.raises(ApplicationError) as refused:
        place(alice, market, "buy", price="100", quantity="1", client_order_id="abc")
    assert (refused.value.code, refused.value.status_code) == ("duplicate_client_order_id", 409)
    assert snapshot() == before
    # Another user may use the same id.
    assert place(bob, market, "buy", price="100", quantity="1", client_order_id="abc").client_order_id == "abc"
    assert bal(alice, usdt) == (D(99_900), D(100))
    assert_exchange_invariants()


def test_market_buy_by_quote_in_an_18_decimal_quote_asset_does_not_crash(btc, alice):
    eth = AssetFactory(symbol="ETH", precision=18)
    btc_eth = MarketFactory(base=btc, quote=eth)
    publish_reference_prices(symbol=btc_eth.symbol, best_bid=None, best_ask=D("20"), last=None)
    with pytest.raises(ApplicationError) as refused:
        place(alice, btc_eth, "buy", "market", quote_quantity="20000000000")
    assert refused.value.code == "insufficient_funds"


# --- cancel requests ------------------------------------------------------------------------


def test_request_cancel_records_the_request_and_is_idempotent(market, alice):
    order = order_row(alice, market)
    cancelling = services.request_cancel(user=alice, order_id=order.pk)
    assert cancelling.pk == order.pk and cancelling.status == S.PENDING
    order.refresh_from_db()
    first = order.cancel_requested_at
    assert first is not None

    again = services.request_cancel(user=alice, order_id=order.pk)
    order.refresh_from_db()
    assert again.cancel_requested_at == first and order.cancel_requested_at == first
    assert order.status == S.PENDING  # the engine cancels; the request only records it


def test_request_cancel_by_client_order_id(market, alice):
    order = order_row(alice, market, client_order_id="bot-1", status=S.OPEN)
    assert services.request_cancel(user=alice, client_order_id="bot-1").pk == order.pk
    order.refresh_from_db()
    assert order.cancel_requested_at is not None


def test_cancel_still_works_in_a_halted_market(market, alice):
    order = order_row(alice, market, status=S.PARTIALLY_FILLED, filled_quantity=D("0.5"))
    market_set_status(market=market, status="halted")
    assert services.request_cancel(user=alice, order_id=order.pk).cancel_requested_at is not None


@pytest.mark.parametrize("by", ["order_id", "client_order_id"])
def test_cancelling_someone_elses_order_is_not_found(market, alice, bob, by):
    order = order_row(alice, market, client_order_id="alices")
    key = {"order_id": order.pk} if by == "order_id" else {"client_order_id": "alices"}
    with pytest.raises(ApplicationError) as refused:
        services.request_cancel(user=bob, **key)
    assert (refused.value.code, refused.value.status_code) == ("order_not_found", 404)
    order.refresh_from_db()
    assert order.cancel_requested_at is None


def test_cancelling_a_missing_order_is_not_found(market, alice):
    with pytest.raises(ApplicationError) as refused:
        services.request_cancel(user=alice, order_id=987654)
    assert refused.value.code == "order_not_found"


@pytest.mark.parametrize("status", [S.FILLED, S.CANCELLED, S.EXPIRED, S.REJECTED])
def test_a_terminal_order_is_not_cancellable(market, alice, status):
    order = order_row(alice, market, status=status)
    with pytest.raises(ApplicationError) as refused:
        services.request_cancel(user=alice, order_id=order.pk)
    assert (refused.value.code, refused.value.status_code) == ("order_not_cancellable", 409)
    assert refused.value.details == {"order_id": order.pk, "status": status}
    order.refresh_from_db()
    assert order.cancel_requested_at is None


def test_request_cancel_all_returns_the_users_live_ids_in_that_market_only(market, alice, bob, usdt):
    eth_usdt = MarketFactory(base=AssetFactory(symbol="ETH"), quote=usdt)
    live = [
        order_row(alice, market, status=S.PENDING),
        order_row(alice, market, status=S.OPEN),
        order_row(alice, market, status=S.PARTIALLY_FILLED, filled_quantity=D("0.5")),
    ]
    others = [
        order_row(alice, market, status=S.FILLED, filled_quantity=D(1)),
        order_row(alice, market, status=S.CANCELLED),
        order_row(alice, eth_usdt, status=S.OPEN),
        order_row(bob, market, status=S.OPEN),
    ]

    ids = services.request_cancel_all(user=alice, market=market)

    assert ids == sorted(o.pk for o in live)
    assert all(Order.objects.get(pk=o.pk).cancel_requested_at is not None for o in live)
    assert all(Order.objects.get(pk=o.pk).cancel_requested_at is None for o in others)
    # Asking again returns the same ids and keeps the first request time.
    first = {o.pk: Order.objects.get(pk=o.pk).cancel_requested_at for o in live}
    assert services.request_cancel_all(user=alice, market=market) == ids
    assert {o.pk: Order.objects.get(pk=o.pk).cancel_requested_at for o in live} == first


def test_request_cancel_all_with_nothing_live_is_empty(market, alice):
    assert services.request_cancel_all(user=alice, market=market) == []
