"""Reads of orders and trades: the filters the history endpoints (ours and the Binance-compatible ones) use."""

from __future__ import annotations

import datetime as dt

import pytest

from orders import selectors
from tests.factories import UserFactory, place_limit

pytestmark = pytest.mark.django_db


def test_order_history_from_an_id_and_by_ids(market, alice, bob):
    orders = [place_limit(alice, market, "buy", "0.01", "100") for _ in range(3)]
    place_limit(bob, market, "buy", "0.01", "100")
    ids = [o.id for o in orders]
    history = selectors.order_history_for_user(user=alice, from_id=ids[1]).order_by("pk")
    assert [o.id for o in history] == ids[1:]
    chosen = selectors.order_history_for_user(user=alice, order_ids=[ids[0], ids[2]]).order_by("pk")
    assert [o.id for o in chosen] == [ids[0], ids[2]]
    # Another user's ids are not theirs to read.
    bobs = selectors.order_history_for_user(user=bob, order_ids=ids)
    assert list(bobs) == []


def test_trades_of_one_order_and_from_a_trade_id(market, engine, alice, bob):
    sell = place_limit(alice, market, "sell", "0.3", "100")
    buys = [place_limit(bob, market, "buy", "0.1", "100") for _ in range(3)]
    engine.drain()
    assert [t.trade_id for t in selectors.trades_for_user(user=alice, order_id=sell.id).order_by("trade_id")] == [
        1,
        2,
        3,
    ]
    assert [t.trade_id for t in selectors.trades_for_user(user=bob, order_id=buys[1].id)] == [2]
    # An order id of someone else's names none of this user's trades.
    assert list(selectors.trades_for_user(user=UserFactory(), order_id=sell.id)) == []
    assert list(selectors.trades_for_user(user=bob, order_id=sell.id)) == []
    later = selectors.trades_for_user(user=bob, market=market, from_trade_id=2).order_by("trade_id")
    assert [t.trade_id for t in later] == [2, 3]


def test_market_trades_by_id_and_time(market, engine, alice, bob):
    place_limit(alice, market, "sell", "0.2", "100")
    for _ in range(2):
        place_limit(bob, market, "buy", "0.1", "100")
    engine.drain()
    assert [t.trade_id for t in selectors.market_trades(market=market)] == [1, 2]
    assert [t.trade_id for t in selectors.market_trades(market=market, from_trade_id=2)] == [2]
    future = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=1)
    assert list(selectors.market_trades(market=market, start=future)) == []
    assert len(selectors.market_trades(market=market, end=future)) == 2
