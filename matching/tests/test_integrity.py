"""Market integrity in the engine: price protection stops market orders at the band, open-order
counters follow every way an order ends, and a halted market's queued commands wait for the resume.

Market BTC_USDT: tick 0.01, lot 0.001, min notional 1; protection band 5% (MARKET_PROTECTION).
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from accounts.models import Balance
from exchange_site.errors import ApplicationError
from exchange_site.redis import get_redis
from markets.models import Market
from markets.services import market_set_status
from matching.tests.test_engine import bal, fresh, place
from orders import services, streams
from orders.models import OpenOrderCount, Order, Trade
from tests.engine_driver import EngineDriver
from tests.invariants import assert_exchange_invariants

D = Decimal
S = Order.Status

pytestmark = pytest.mark.django_db


def thin_book(alice, market, engine) -> None:
    """Asks 1 @ 100 and 1 @ 200: a market buy of 2 would pay double for its second half."""
    place(alice, market, "sell", qty="1", price="100")
    place(alice, market, "sell", qty="1", price="200")
    engine.drain()  # publishes best ask 100: a buy's band ends at 105


def test_a_market_buy_by_quantity_into_a_thin_book_stops_at_the_band(market, alice, bob, usdt, engine):
    thin_book(alice, market, engine)
    buy = place(bob, market, "buy", "market", qty="2")
    engine.drain()
    buy = fresh(buy)
    assert (buy.status, buy.end_reason, buy.filled_quantity) == (S.EXPIRED, "price_protection", D(1))
    assert bal(bob, usdt) == (D(99_900), 0)  # paid 100 for 1; the rest of the 210 lock came back
    assert list(Order.objects.filter(side="sell", status=S.OPEN).values_list("price", flat=True)) == [D(200)]
    assert_exchange_invariants(engine)


def test_a_market_buy_by_quote_into_a_thin_book_stops_at_the_band(market, alice, bob, usdt, engine):
    thin_book(alice, market, engine)
    buy = place(bob, market, "buy", "market", quote_quantity=D(300))
    assert buy.protection_price == D(105) and buy.locked_amount == D(300)
    engine.drain()
    buy = fresh(buy)
    assert (buy.status, buy.end_reason) == (S.EXPIRED, "price_protection")
    assert (buy.filled_quantity, buy.filled_quote) == (D(1), D(100))
    assert bal(bob, usdt) == (D(99_900), 0)
    assert_exchange_invariants(engine)


def test_a_quote_buy_whose_budget_runs_out_inside_the_band_is_not_a_price_protection_stop(
    market, alice, bob, usdt, engine
):
    """Its budget, not the band, ended it, though liquidity is left beyond the band (the label must say so)."""
    thin_book(alice, market, engine)
    # 1 @ 100 inside the band, then 0.1 USDT left: less than one lot (0.001) at 200 costs.
    buy = place(bob, market, "buy", "market", quote_quantity=D("100.1"))
    engine.drain()
    buy = fresh(buy)
    assert (buy.filled_quantity, buy.filled_quote) == (D(1), D(100))
    assert (buy.status, buy.end_reason) == (S.EXPIRED, "remainder_expired")
    assert_exchange_invariants(engine)


def test_a_market_sell_into_a_thin_book_stops_at_the_band(market, alice, bob, btc, engine):
    place(alice, market, "buy", qty="1", price="100")
    place(alice, market, "buy", qty="1", price="50")
    engine.drain()
    sell = place(bob, market, "sell", "market", qty="2")
    engine.drain()
    sell = fresh(sell)
    assert (sell.status, sell.end_reason, sell.filled_quantity) == (S.EXPIRED, "price_protection", D(1))
    assert bal(bob, btc) == (D(9), 0)
    assert_exchange_invariants(engine)


def test_a_market_order_that_empties_the_book_is_not_a_price_protection_stop(market, alice, bob, engine):
    place(alice, market, "sell", qty="1", price="100")
    engine.drain()
    buy = place(bob, market, "buy", "market", qty="2")
    engine.drain()
    assert (fresh(buy).status, fresh(buy).end_reason) == (S.EXPIRED, "remainder_expired")
    assert_exchange_invariants(engine)


def test_a_market_order_inside_the_band_fills_across_levels(market, alice, bob, engine):
    place(alice, market, "sell", qty="1", price="100")
    place(alice, market, "sell", qty="1", price="105")
    engine.drain()
    buy = place(bob, market, "buy", "market", qty="2")
    engine.drain()
    assert (fresh(buy).status, fresh(buy).filled_quote, fresh(buy).end_reason) == (S.FILLED, D(205), "")
    assert_exchange_invariants(engine)


@pytest.mark.parametrize("request_fields", [{"qty": "1"}, {"quote_quantity": D(50)}], ids=["by_qty", "by_quote"])
def test_market_orders_are_refused_when_the_market_has_no_price_at_all(market, bob, request_fields, engine):
    with pytest.raises(ApplicationError) as refused:
        place(bob, market, "buy", "market", **request_fields)
    assert refused.value.code == "no_reference_price"
    with pytest.raises(ApplicationError) as refused:
        place(bob, market, "sell", "market", qty="1")
    assert refused.value.code == "no_reference_price"
    assert not Order.objects.exists()


# --- open-order counters ------------------------------------------------------------------


def counter(user, market) -> int:
    row = OpenOrderCount.objects.filter(user=user, market=market).first()
    return row.count if row else 0


def test_the_counter_follows_placements_fills_cancels_and_expiries(market, alice, bob, engine):
    asks = [place(alice, market, "sell", qty="1", price=str(100 + i)) for i in range(3)]
    assert counter(alice, market) == 3  # pending orders count
    engine.drain()
    assert counter(alice, market) == 3  # resting orders count
    place(bob, market, "buy", qty="1", price="100")  # fills ask 100
    place(bob, market, "buy", "limit", qty="1", price="90", time_in_force="ioc")  # expires at once
    engine.drain()
    assert (counter(alice, market), counter(bob, market)) == (2, 0)
    services.request_cancel(user=alice, order_id=asks[1].pk)
    engine.drain()
    assert counter(alice, market) == 1
    assert_exchange_invariants(engine)


@pytest.fixture
def cap_of_three(settings):
    settings.EXCHANGE = {**settings.EXCHANGE, "MAX_OPEN_ORDERS": 3}


def test_a_slot_freed_by_the_engine_can_be_used_again(market, alice, engine, cap_of_three):
    orders = [place(alice, market, "sell", qty="1", price=str(100 + i)) for i in range(3)]
    with pytest.raises(ApplicationError) as refused:
        place(alice, market, "sell", qty="1", price="110")
    assert refused.value.code == "too_many_open_orders"
    services.request_cancel(user=alice, order_id=orders[0].pk)
    engine.drain()
    place(alice, market, "sell", qty="1", price="110")
    assert counter(alice, market) == 3
    assert_exchange_invariants(engine)


# --- halt and resume ------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_halted_market_keeps_its_queued_commands_and_runs_each_once_after_the_resume(market, alice, bob):
    """Placements and cancels queued in the stream when the market halts wait, then run once, in order."""
    engine = EngineDriver([market])
    engine.drain()  # the engine is up and idle
    asks = [place(alice, market, "sell", qty="1", price=str(100 + i)) for i in range(5)]
    engine.drain()  # five asks rest: 100..104
    # Commands committed (so XADDed) but not yet read by the engine:
    # A bid below the asks (then cancelled), and two that each take an ask.
    bids = [place(bob, market, "buy", qty="1", price=price) for price in ("99", "101", "102")]
    services.request_cancel(user=alice, order_id=asks[4].pk)
    services.request_cancel(user=bob, order_id=bids[0].pk)
    market_set_status(market=market, status=Market.Status.HALTED)
    services.request_cancel(user=alice, order_id=asks[3].pk)  # cancels can still be asked for while halted

    assert engine.drain() == 0  # the engine read the batch, saw the halt, applied and acked nothing
    stream = streams.stream_key(market.symbol)
    assert get_redis().xpending(stream, "engine")["pending"] == 6  # delivered, unacked: kept for later
    assert not Trade.objects.exists()
    assert Order.objects.filter(status=S.PENDING).count() == 3
    assert engine.engine.paused == {stream}

    market_set_status(market=market, status=Market.Status.TRADING)
    engine.drain()
    assert get_redis().xpending(stream, "engine")["pending"] == 0
    # In stream order: bob's first bid rested and was then cancelled; the other two bought asks 100 and 101.
    assert [fresh(b).status for b in bids] == [S.CANCELLED, S.FILLED, S.FILLED]
    assert [fresh(a).status for a in asks] == [S.FILLED, S.FILLED, S.OPEN, S.CANCELLED, S.CANCELLED]
    assert list(Trade.objects.order_by("trade_id").values_list("trade_id", "price")) == [(1, D(100)), (2, D(101))]
    engine.drain()  # nothing runs twice
    assert Trade.objects.count() == 2
    assert counter(alice, market) == 1 and counter(bob, market) == 0
    assert_exchange_invariants(engine)


@pytest.mark.django_db(transaction=True)
def test_a_cancel_only_market_refuses_placements_and_serves_cancels(market, alice):
    engine = EngineDriver([market])
    ask = place(alice, market, "sell", qty="1", price="100")
    engine.drain()
    market_set_status(market=market, status=Market.Status.CANCEL_ONLY)
    with pytest.raises(ApplicationError) as refused:
        place(alice, market, "sell", qty="1", price="101")
    assert (refused.value.code, refused.value.status_code) == ("market_cancel_only", 409)
    services.request_cancel(user=alice, order_id=ask.pk)
    engine.drain()
    assert fresh(ask).status == S.CANCELLED
    assert Balance.objects.get(user=alice, asset=market.base).locked == 0
    assert_exchange_invariants(engine)
