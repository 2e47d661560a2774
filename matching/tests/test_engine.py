"""The engine end to end inside one process: orders placed by the service, matched, settled, checked.

Amounts are exact: market BTC_USDT has tick 0.01, lot 0.001, maker fee 0.1%,
taker fee 0.2%; fees are taken from what each side receives.
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from accounts.models import Balance, LedgerEntry
from accounts.selectors import fee_user_id
from orders import services, streams
from orders.models import Order, Trade
from tests.engine_driver import EngineDriver
from tests.invariants import assert_exchange_invariants

D = Decimal
S = Order.Status


def place(user, market, side, type_="limit", qty=None, price=None, **extra) -> Order:
    request = services.OrderRequest(
        side=side,
        type=type_,
        quantity=D(qty) if qty is not None else None,
        price=D(price) if price is not None else None,
        **extra,
    )
    return services.place_order(user=user, market=market, request=request)


def bal(user, asset) -> tuple[Decimal, Decimal]:
    b = Balance.objects.filter(user=user, asset=asset).first()
    return (b.available, b.locked) if b else (D(0), D(0))


def fresh(order: Order) -> Order:
    order.refresh_from_db()
    return order


pytestmark = pytest.mark.django_db


def test_limit_orders_trade_at_the_makers_price_with_fees(market, alice, bob, btc, usdt, engine):
    ask = place(alice, market, "sell", qty="1", price="100")
    engine.drain()
    bid = place(bob, market, "buy", qty="1", price="101")
    engine.drain()

    trade = Trade.objects.get()
    assert (trade.trade_id, trade.price, trade.quantity, trade.taker_side) == (1, D(100), D(1), "buy")
    assert trade.buyer_fee == D("0.002") and trade.seller_fee == D("0.1")
    assert fresh(ask).status == S.FILLED and fresh(bid).status == S.FILLED
    assert fresh(ask).processed_at <= fresh(bid).processed_at  # when the engine first handled each
    assert bal(alice, btc) == (D(9), 0) and bal(alice, usdt) == (D("100099.9"), 0)
    # Bob locked 101 but paid 100: the difference came back at once.
    assert bal(bob, btc) == (D("10.998"), 0) and bal(bob, usdt) == (D(99_900), 0)
    assert bal_fee(btc) == D("0.002") and bal_fee(usdt) == D("0.1")
    assert LedgerEntry.objects.filter(trade_id=1, reason="fee").count() == 2
    assert_exchange_invariants(engine)


def bal_fee(asset) -> Decimal:
    return Balance.objects.get(user_id=fee_user_id(), asset=asset).available


def test_partial_fill_keeps_the_rest_booked_and_locked(market, alice, bob, btc, engine):
    ask = place(alice, market, "sell", qty="2", price="100")
    place(bob, market, "buy", qty="0.5", price="100")
    engine.drain()
    ask = fresh(ask)
    assert ask.status == S.PARTIALLY_FILLED and ask.filled_quantity == D("0.5")
    assert ask.locked_amount == D("1.5") and bal(alice, btc) == (D(8), D("1.5"))
    assert engine.market("BTC_USDT").book.best_ask() == 10000
    assert_exchange_invariants(engine)


def test_price_time_priority(market, alice, bob, engine):
    first = place(alice, market, "sell", qty="1", price="100")
    engine.drain()
    second = place(bob, market, "sell", qty="1", price="100")
    engine.drain()
    better = place(bob, market, "sell", qty="1", price="99.99")
    engine.drain()
    taker = place(alice, market, "buy", qty="1.5", price="100")
    engine.drain()
    assert fresh(better).status == S.FILLED
    assert fresh(first).filled_quantity == D("0.5") and fresh(second).filled_quantity == 0
    assert fresh(taker).status == S.FILLED
    assert list(Trade.objects.order_by("trade_id").values_list("price", flat=True)) == [D("99.99"), D(100)]
    assert_exchange_invariants(engine)


def test_ioc_expires_its_rest_and_unlocks_it(market, alice, bob, usdt, engine):
    place(alice, market, "sell", qty="1", price="100")
    engine.drain()
    ioc = place(bob, market, "buy", qty="3", price="100", time_in_force="ioc")
    engine.drain()
    ioc = fresh(ioc)
    assert ioc.status == S.EXPIRED and ioc.filled_quantity == D(1) and ioc.end_reason == "remainder_expired"
    assert bal(bob, usdt) == (D(99_900), 0)
    assert_exchange_invariants(engine)


@pytest.mark.parametrize(("qty", "status", "filled"), [("2", S.EXPIRED, 0), ("1.5", S.FILLED, D("1.5"))])
def test_fok_fills_entirely_or_not_at_all(market, alice, bob, engine, qty, status, filled):
    place(alice, market, "sell", qty="1", price="100")
    place(alice, market, "sell", qty="0.5", price="101")
    engine.drain()
    fok = place(bob, market, "buy", qty=qty, price="101", time_in_force="fok")
    engine.drain()
    assert (fresh(fok).status, fresh(fok).filled_quantity) == (status, filled)
    assert Trade.objects.count() == (0 if status == S.EXPIRED else 2)
    assert_exchange_invariants(engine)


def test_post_only_is_rejected_when_it_would_take_and_rests_otherwise(market, alice, bob, usdt, engine):
    place(alice, market, "sell", qty="1", price="100")
    engine.drain()
    taking = place(bob, market, "buy", "limit_maker", qty="1", price="100")
    resting = place(bob, market, "buy", "limit_maker", qty="1", price="99")
    engine.drain()
    assert fresh(taking).status == S.REJECTED and fresh(taking).end_reason == "post_only_would_take"
    assert fresh(resting).status == S.OPEN
    assert bal(bob, usdt) == (D(100_000) - 99, D(99))
    assert not Trade.objects.exists()
    assert_exchange_invariants(engine)


def test_market_sell_by_quantity_takes_bids_and_expires_the_rest(market, alice, bob, btc, engine):
    place(alice, market, "buy", qty="1", price="100")
    place(alice, market, "buy", qty="1", price="99")
    engine.drain()
    sell = place(bob, market, "sell", "market", qty="3")
    engine.drain()
    sell = fresh(sell)
    assert sell.status == S.EXPIRED and sell.filled_quantity == D(2) and sell.filled_quote == D(199)
    assert bal(bob, btc) == (D(8), 0)
    assert_exchange_invariants(engine)


def test_market_buy_by_quote_spends_at_most_the_amount(market, alice, bob, usdt, engine):
    place(alice, market, "sell", qty="1", price="100")
    place(alice, market, "sell", qty="1", price="105")  # inside the 5% protection band
    engine.drain()
    buy = place(bob, market, "buy", "market", quote_quantity=D("152.5"))
    engine.drain()
    buy = fresh(buy)
    assert buy.status == S.FILLED and buy.filled_quantity == D("1.5") and buy.filled_quote == D("152.5")
    assert bal(bob, usdt) == (D(100_000) - D("152.5"), 0)
    assert_exchange_invariants(engine)


def test_market_buy_by_quote_returns_the_dust_it_cannot_spend(market, alice, bob, usdt, engine):
    place(alice, market, "sell", qty="1", price="100")
    engine.drain()
    buy = place(bob, market, "buy", "market", quote_quantity=D("10.05"))
    engine.drain()
    buy = fresh(buy)
    # 10.05 buys 0.1 BTC at 100 (a lot is 0.001 = 0.1 USDT); the 0.05 left is unlocked.
    assert buy.filled_quantity == D("0.1") and buy.filled_quote == D(10) and buy.status == S.FILLED
    assert bal(bob, usdt) == (D(100_000) - 10, 0)
    assert_exchange_invariants(engine)


def test_market_buy_by_quantity_never_pays_above_its_protection_price(market, alice, bob, usdt, engine):
    place(alice, market, "sell", qty="1", price="100")
    place(alice, market, "sell", qty="1", price="106")
    engine.drain()  # publishes best ask 100: protection price 105
    buy = place(bob, market, "buy", "market", qty="2")
    assert buy.protection_price == D(105) and buy.locked_amount == D(210)
    engine.drain()
    buy = fresh(buy)
    assert buy.status == S.EXPIRED and buy.filled_quantity == D(1)
    assert bal(bob, usdt) == (D(99_900), 0)
    assert_exchange_invariants(engine)


def test_market_sell_never_sells_below_its_protection_price(market, alice, bob, btc, engine):
    place(alice, market, "buy", qty="1", price="100")
    place(alice, market, "buy", qty="1", price="94")
    engine.drain()  # publishes best bid 100: the sell's floor is 95
    sell = place(bob, market, "sell", "market", qty="2")
    assert sell.protection_price == D(95)
    engine.drain()
    sell = fresh(sell)
    assert sell.status == S.EXPIRED and sell.filled_quantity == D(1) and sell.filled_quote == D(100)
    assert bal(bob, btc) == (D(9), 0)
    assert_exchange_invariants(engine)


@pytest.mark.parametrize(
    ("mode", "maker_status", "taker_status", "trades"),
    [
        ("none", S.FILLED, S.FILLED, 1),
        ("expire_taker", S.OPEN, S.EXPIRED, 0),
        ("expire_maker", S.EXPIRED, S.OPEN, 0),
        ("expire_both", S.EXPIRED, S.EXPIRED, 0),
    ],
)
def test_self_trade_prevention(market, alice, engine, mode, maker_status, taker_status, trades):
    maker = place(alice, market, "buy", qty="1", price="100")
    engine.drain()
    taker = place(alice, market, "sell", qty="1", price="100", stp_mode=mode)
    engine.drain()
    assert fresh(maker).status == maker_status and fresh(taker).status == taker_status
    assert Trade.objects.count() == trades
    if maker_status == S.EXPIRED:
        assert fresh(maker).end_reason == "self_trade_prevention"
    assert_exchange_invariants(engine)


def test_cancel_unlocks_the_rest(market, alice, bob, usdt, engine):
    bid = place(alice, market, "buy", qty="2", price="100")
    engine.drain()
    place(bob, market, "sell", qty="0.5", price="100")
    engine.drain()
    services.request_cancel(user=alice, order_id=bid.id)
    engine.drain()
    bid = fresh(bid)
    assert bid.status == S.CANCELLED and bid.filled_quantity == D("0.5") and bid.locked_amount == 0
    assert bal(alice, usdt) == (D(100_000) - 50, 0)
    assert engine.market("BTC_USDT").book.best_bid() is None
    assert_exchange_invariants(engine)


def test_cancel_before_the_engine_saw_the_order(market, alice, usdt, engine):
    bid = place(alice, market, "buy", qty="1", price="100")
    services.request_cancel(user=alice, order_id=bid.id)
    engine.drain()
    assert fresh(bid).status == S.CANCELLED and fresh(bid).end_reason == "cancelled_before_booked"
    assert bal(alice, usdt) == (D(100_000), 0)
    assert_exchange_invariants(engine)


def test_cancel_all_cancels_only_that_users_orders_in_that_market(market, alice, bob, engine):
    mine = [place(alice, market, "buy", qty="1", price=p) for p in ("90", "91")]
    theirs = place(bob, market, "buy", qty="1", price="92")
    engine.drain()
    assert sorted(services.request_cancel_all(user=alice, market=market)) == [o.id for o in mine]
    engine.drain()
    assert all(fresh(o).status == S.CANCELLED for o in mine) and fresh(theirs).status == S.OPEN
    assert_exchange_invariants(engine)


def test_a_restarted_engine_rebuilds_its_book_and_continues_the_ids(market, alice, bob, engine):
    first = place(alice, market, "sell", qty="1", price="100")
    place(alice, market, "sell", qty="1", price="100")
    place(bob, market, "buy", qty="0.5", price="100")
    engine.drain()
    restarted = EngineDriver([market])
    restarted.drain()
    assert restarted.market("BTC_USDT").book.best_ask() == 10000
    place(bob, market, "buy", qty="1", price="100")
    restarted.drain()
    # Time priority survived the restart: the first order filled before the second.
    assert fresh(first).status == S.FILLED
    assert list(Trade.objects.order_by("trade_id").values_list("trade_id", flat=True)) == [1, 2, 3]
    assert_exchange_invariants(restarted)


def test_a_replayed_stream_entry_changes_nothing(market, alice, bob, engine):
    ask = place(alice, market, "sell", qty="1", price="100")
    place(bob, market, "buy", qty="1", price="100")
    engine.drain()
    before = (Trade.objects.count(), LedgerEntry.objects.count())
    streams.send_commands("BTC_USDT", [(streams.PLACE, ask.id), (streams.CANCEL, ask.id), (streams.PLACE, 10**9)])
    engine.drain()
    assert (Trade.objects.count(), LedgerEntry.objects.count()) == before
    assert_exchange_invariants(engine)


def test_a_lingering_read_merges_replies_per_stream_in_order():
    from matching.engine import _entries, _merge

    first = [(b"s1", [(b"1-0", {}), (b"2-0", {})])]
    second = [(b"s2", [(b"9-0", {})]), (b"s1", [(b"3-0", {})])]
    merged = dict(_merge(first, second))
    assert [entry_id for entry_id, _ in merged[b"s1"]] == [b"1-0", b"2-0", b"3-0"]
    assert _entries(_merge(first, second)) == 4


def test_the_engine_carries_on_when_redis_lost_its_streams(market, alice, bob, engine):
    from exchange_site.redis import get_redis

    engine.drain()
    get_redis().flushall()  # as after a Redis restart without persistence
    ask = place(alice, market, "sell", qty="1", price="100")
    place(bob, market, "buy", qty="1", price="100")
    engine.drain()  # NOGROUP on read: groups recreated; the database's owed orders still settle
    assert fresh(ask).status == S.FILLED
    assert get_redis().xinfo_groups(streams.stream_key("BTC_USDT"))[0]["name"] == b"engine"
    assert_exchange_invariants(engine)
