"""What the engine publishes after each batch: Redis read models and stream frames agree with the database."""

from __future__ import annotations

import random
from decimal import Decimal

import pytest

from marketdata import selectors, streams
from marketdata.klines import to_millis
from marketdata.ticker import MINUTE_MS
from matching.models import EngineState
from orders import services
from orders.models import Order, Trade
from tests.factories import UserFactory, fund, place_limit
from tests.group_listener import GroupListener

pytestmark = pytest.mark.django_db


def db_book(market) -> dict[str, dict[str, Decimal]]:
    """Aggregated open orders: the truth the engine's book caches."""
    book: dict[str, dict[str, Decimal]] = {"bids": {}, "asks": {}}
    for side, price, qty, filled in Order.objects.filter(
        market=market, status__in=(Order.Status.OPEN, Order.Status.PARTIALLY_FILLED)
    ).values_list("side", "price", "quantity", "filled_quantity"):
        levels = book["bids" if side == "buy" else "asks"]
        levels[price.normalize()] = levels.get(price.normalize(), Decimal(0)) + qty - filled
    return book


def as_book(snapshot: dict) -> dict[str, dict[str, Decimal]]:
    return {side: {Decimal(p).normalize(): Decimal(q) for p, q in snapshot[side]} for side in ("bids", "asks")}


def random_flow(market, users, rng: random.Random, count: int) -> None:
    for _ in range(count):
        user = rng.choice(users)
        side = rng.choice(("buy", "sell"))
        price = f"{rng.randint(95, 105)}.{rng.randint(0, 99):02d}"
        place_limit(user, market, side, f"0.{rng.randint(20, 500):03d}", price)
        if rng.random() < 0.2:
            live = list(Order.objects.filter(market=market, status__in=Order.LIVE_STATUSES).values_list("pk", "user"))
            if live:
                order_id, owner = rng.choice(live)
                services.request_cancel(user=next(u for u in users if u.id == owner), order_id=order_id)


def test_depth_updates_replayed_on_the_snapshot_give_the_engines_book(market, engine, btc, usdt):
    users = [UserFactory() for _ in range(3)]
    for user in users:
        fund(user, btc, Decimal(100))
        fund(user, usdt, Decimal(1_000_000))
    rng = random.Random(3)
    random_flow(market, users, rng, 30)
    engine.drain()
    start = selectors.depth_snapshot(symbol=market.symbol, limit=5000)
    listener = GroupListener(
        streams.public_group("depth", market.symbol), streams.public_group("trades", market.symbol)
    )
    first_trade = Trade.objects.count()

    for _ in range(5):  # several batches, each with its own depth update
        random_flow(market, users, rng, 25)
        engine.drain()

    local = as_book(start)
    expected_next = start["lastUpdateId"] + 1
    updates = listener.frames("depth@" + market.symbol)
    assert len(updates) >= 5
    for frame in updates:
        update = frame["data"]
        assert update["e"] == "depthUpdate" and update["s"] == market.symbol
        assert update["U"] == expected_next, "depth update ids must continue without a gap"
        expected_next = update["u"] + 1
        assert update["u"] - update["U"] + 1 == len(update["b"]) + len(update["a"])
        for side, key in (("bids", "b"), ("asks", "a")):
            for price, qty in update[key]:
                if Decimal(qty) == 0:
                    local[side].pop(Decimal(price).normalize(), None)
                else:
                    local[side][Decimal(price).normalize()] = Decimal(qty)
    final = selectors.depth_snapshot(symbol=market.symbol, limit=5000)
    assert final["lastUpdateId"] == expected_next - 1 == EngineState.objects.get(market=market).last_update_id
    assert local == as_book(final) == db_book(market)
    engine_book = engine.market(market.symbol).book
    assert len(final["bids"]) == len(engine_book.depth(0, 10_000))
    assert [Decimal(p) for p, _ in final["bids"]] == sorted((Decimal(p) for p, _ in final["bids"]), reverse=True)

    trade_frames = [f["data"] for f in listener.frames("trades@" + market.symbol)]
    db_trades = list(Trade.objects.filter(market=market).order_by("trade_id")[first_trade:])
    assert [(t["t"], Decimal(t["p"]), Decimal(t["q"]), t["m"]) for t in trade_frames] == [
        (t.trade_id, t.price, t.quantity, t.taker_side == "sell") for t in db_trades
    ]
    listener.close()


def test_recent_trades_and_ticker_follow_the_trades(market, engine, alice, bob):
    place_limit(alice, market, "sell", "1", "100")
    place_limit(alice, market, "sell", "1", "110")
    place_limit(bob, market, "buy", "0.5", "100")
    engine.drain()
    place_limit(bob, market, "buy", "1.5", "110")
    engine.drain()

    trades = selectors.recent_trades(symbol=market.symbol, limit=10)
    assert [(t["id"], t["price"], t["qty"], t["taker_side"], t["is_buyer_maker"]) for t in trades] == [
        (1, "100", "0.5", "buy", False),
        (2, "100", "0.5", "buy", False),
        (3, "110", "1", "buy", False),
    ]
    assert selectors.recent_trades(symbol=market.symbol, limit=1)[0]["id"] == 3
    (ticker,) = selectors.tickers(symbols=[market.symbol])
    assert (ticker["open"], ticker["high"], ticker["low"], ticker["close"]) == ("100", "110", "100", "110")
    assert (ticker["volume"], ticker["quote_volume"], ticker["trades"]) == ("2", "210", 3)
    assert (ticker["change"], ticker["change_percent"]) == ("10", "10")
    assert ticker["best_bid"] is None and ticker["best_ask"] is None
    assert ticker["close_time"] - ticker["open_time"] < 2 * MINUTE_MS


def test_engine_start_rebuilds_every_read_model(market, engine, alice, bob):
    place_limit(alice, market, "sell", "1", "101")
    place_limit(bob, market, "buy", "2", "99")
    place_limit(bob, market, "buy", "0.25", "101")
    engine.drain()
    before = (
        selectors.depth_snapshot(symbol=market.symbol, limit=100),
        selectors.recent_trades(symbol=market.symbol, limit=100),
        selectors.tickers(symbols=[market.symbol])[0],
    )
    from exchange_site.redis import get_redis
    from tests.engine_driver import EngineDriver

    get_redis().flushdb()  # Redis lost everything
    EngineDriver([market]).start()
    after = (
        selectors.depth_snapshot(symbol=market.symbol, limit=100),
        selectors.recent_trades(symbol=market.symbol, limit=100),
        selectors.tickers(symbols=[market.symbol])[0],
    )
    assert after[0] == before[0] == {"lastUpdateId": after[0]["lastUpdateId"], "bids": [["99", "2"]],
                                     "asks": [["101", "0.75"]]}  # fmt: skip
    assert after[1] == before[1]
    for key in ("open", "high", "low", "close", "volume", "quote_volume", "trades", "best_bid", "best_ask"):
        assert after[2][key] == before[2][key], key


def test_owners_get_their_order_fill_and_balance_events_and_nobody_elses(market, engine, alice, bob):
    carol = UserFactory()
    alice_events = GroupListener(streams.user_group(alice.id))
    carol_events = GroupListener(streams.user_group(carol.id))
    sell = place_limit(alice, market, "sell", "1", "100", client_order_id="alice-1")
    engine.drain()
    place_limit(bob, market, "buy", "0.4", "100")
    engine.drain()

    frames = alice_events.frames()
    orders = [f["data"] for f in frames if f["stream"] == "orders"]
    assert [(o["id"], o["status"], o["filled_quantity"]) for o in orders] == [
        (sell.id, "open", "0"),
        (sell.id, "partially_filled", "0.4"),
    ]
    assert orders[0]["client_order_id"] == "alice-1" and orders[0]["price"] == "100"
    # What the order was placed with rides along, so clients (and the Binance user stream) need no lookup.
    sell.refresh_from_db()
    for order in orders:
        assert (order["time_in_force"], order["stp_mode"], order["quote_quantity"]) == ("gtc", "none", None)
        assert order["created_at"] == to_millis(sell.created_at)
    (fill,) = [f["data"] for f in frames if f["stream"] == "fills"]
    assert (fill["order_id"], fill["side"], fill["role"], fill["qty"], fill["price"]) == (
        sell.id,
        "sell",
        "maker",
        "0.4",
        "100",
    )
    assert (fill["fee"], fill["fee_asset"]) == ("0.04", "USDT")  # maker 0.1% of 40 USDT
    balances = [f["data"]["balances"] for f in frames if f["stream"] == "balances"]
    assert balances[-1] == [
        {"asset": "BTC", "available": "9", "locked": "0.6"},
        {"asset": "USDT", "available": "100039.96", "locked": "0"},
    ]
    assert carol_events.frames(wait=0.1) == []
    alice_events.close()
    carol_events.close()
