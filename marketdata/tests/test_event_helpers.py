"""Helpers other readers of the real-time events rely on: event order per batch, subscriptions, batched reads."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from accounts import services as money
from marketdata import selectors, streams
from marketdata.broadcast import GroupSubscription
from tests.factories import place_limit
from tests.group_listener import GroupListener

pytestmark = pytest.mark.django_db


def test_a_users_fills_come_before_the_order_states_and_balances_last(market, engine, alice, bob):
    """Within one batch a user reads each fill before the order state it led to (docs/realtime.md)."""
    place_limit(alice, market, "sell", "0.3", "100")
    place_limit(alice, market, "sell", "0.3", "101")
    engine.drain()
    events = GroupListener(streams.user_group(bob.id))
    place_limit(bob, market, "buy", "0.5", "101")
    engine.drain()
    frames = events.frames()
    assert [f["stream"] for f in frames] == ["fills", "fills", "orders", "balances"]
    assert [f["data"]["qty"] for f in frames[:2]] == ["0.3", "0.2"]
    assert frames[2]["data"]["filled_quantity"] == "0.5"
    events.close()


def test_deposits_and_withdrawals_say_what_moved(market, alice, btc):
    events = GroupListener(streams.user_group(alice.id))
    money.deposit(user=alice, asset=btc, amount=Decimal("1.5"))
    money.withdraw(user=alice, asset=btc, amount=Decimal("0.5"))
    deposit, withdrawal = (f["data"] for f in events.frames("balances"))
    assert deposit["change"] == {"asset": "BTC", "amount": "1.5", "reason": "deposit"}
    assert deposit["balances"] == [{"asset": "BTC", "available": "11.5", "locked": "0"}]
    assert withdrawal["change"] == {"asset": "BTC", "amount": "-0.5", "reason": "withdrawal"}
    events.close()


def test_a_group_subscription_reads_what_is_published_after_it(market, engine, alice):
    with GroupSubscription(streams.user_group(alice.id)) as subscription:
        assert subscription.next_frame(0.05) is None
        order = place_limit(alice, market, "buy", "0.1", "99")
        engine.drain()
        seen = []
        while (frame := subscription.next_frame(0.2)) is not None:
            seen.append(frame)
    stream, text = seen[0]
    assert stream == "orders"
    assert json.loads(text)["data"]["id"] == order.id


def test_tops_of_several_books_and_last_trades_in_one_read(market, engine, alice, bob):
    place_limit(alice, market, "sell", "0.2", "100")
    place_limit(bob, market, "buy", "0.3", "100")
    place_limit(alice, market, "sell", "1", "102")
    engine.drain()
    tops = selectors.depth_snapshots(symbols=[market.symbol, "NONE_X"], limit=1)
    assert tops[market.symbol]["bids"] == [["100", "0.1"]] and tops[market.symbol]["asks"] == [["102", "1"]]
    assert tops["NONE_X"] == {"lastUpdateId": 0, "bids": [], "asks": []}
    assert tops[market.symbol] == selectors.depth_snapshot(symbol=market.symbol, limit=1)
    lasts = selectors.last_trades(symbols=[market.symbol, "NONE_X"])
    assert (lasts[market.symbol]["price"], lasts[market.symbol]["qty"]) == ("100", "0.2")
    assert lasts["NONE_X"] is None
