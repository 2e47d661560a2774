"""The market maker's loop against an in-memory exchange: what it sends, when, and what it believes afterwards.

``FakeExchange`` stands in for ``ExchangeClient`` (the network); it rests
every order at once, cancels at once and can be taken down.  The real
exchange is exercised in ``test_market_maker_stack.py``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
from decimal import Decimal as D

import pytest
from django.conf import settings

from markets.market_maker.bot import QUOTE_PREFIX, TAKER_PREFIX, MarketMaker
from markets.market_maker.client import ApiError, ExchangeUnavailable
from markets.market_maker.config import ConfigError, MakerConfig

MARKET = {
    "symbol": "BTC_USDT",
    "base": "BTC",
    "quote": "USDT",
    "status": "trading",
    "tick_size": "0.01",
    "lot_size": "0.00001",
    "min_notional": "5",
    "max_quantity": "1000",
}


class FakeExchange:
    """The REST calls of ``ExchangeClient``, answered from memory; ``calls`` lists them in order."""

    ws_url = "ws://fake/ws"

    def __init__(self, *, usdt: str = "1000000", btc: str = "100") -> None:
        self.down = False
        self.calls: list[str] = []
        self.orders: dict[int, dict] = {}
        self.funds = {"USDT": [D(usdt), D(0)], "BTC": [D(btc), D(0)]}
        self.trades: list[dict] = []
        self.ids = itertools.count(1)
        self.closed = False
        self.book: dict | None = None  # what GET depth answers; None: 404

    def _call(self, name: str) -> None:
        if self.down:
            raise ExchangeUnavailable(f"{name}: connection refused")
        self.calls.append(name)

    async def markets(self):
        self._call("markets")
        return [MARKET]

    async def recent_trades(self, symbol, *, limit=1):
        self._call("recent_trades")
        return []

    async def my_trades(self, symbol, *, limit=100):
        self._call("my_trades")
        return list(reversed(self.trades))[:limit]

    async def depth(self, symbol, *, limit=100):
        self._call("depth")
        if self.book is None:
            raise ApiError(404, "not_found", "no depth here")
        return self.book

    async def balances(self):
        self._call("balances")
        return [{"asset": a, "available": f"{v[0]:f}", "locked": f"{v[1]:f}"} for a, v in self.funds.items()]

    async def open_orders(self):
        self._call("open_orders")
        return [dict(o) for o in self.orders.values()]

    def _accept(self, body: dict) -> dict:
        price, quantity = D(body["price"]), D(body["quantity"])
        asset, amount = ("USDT", price * quantity) if body["side"] == "buy" else ("BTC", quantity)
        if self.funds[asset][0] < amount:
            return {"status": 400, "error": {"code": "insufficient_funds", "message": "no"}}
        self.funds[asset][0] -= amount
        self.funds[asset][1] += amount
        order = body | {
            "id": next(self.ids),
            "status": "open",
            "filled_quantity": "0",
            "locked_amount": f"{amount:f}",
            "cancel_requested": False,
        }
        if body.get("time_in_force") != "ioc":
            self.orders[order["id"]] = order
        return {"status": 201, "order": order}

    async def place_batch(self, orders):
        self._call(f"place_batch:{len(orders)}")
        return [self._accept(body) for body in orders]

    async def place(self, order):
        self._call("place")
        return self._accept(order)["order"]

    async def cancel_batch(self, order_ids):
        self._call(f"cancel_batch:{len(order_ids)}")
        results = []
        for order_id in order_ids:
            order = self.orders.pop(order_id, None)
            if order is None:
                results.append({"status": 404, "error": {"code": "order_not_found"}})
                continue
            asset = "USDT" if order["side"] == "buy" else "BTC"
            amount = D(order["locked_amount"])
            self.funds[asset][0] += amount
            self.funds[asset][1] -= amount
            results.append({"status": 202, "order": order})
        return results

    def ws_headers(self):
        return {}

    async def close(self):
        self.closed = True

    def quotes(self, side: str) -> list[dict]:
        return sorted(
            (o for o in self.orders.values() if o["side"] == side and o["client_order_id"].startswith(QUOTE_PREFIX)),
            key=lambda o: D(o["price"]),
        )


def no_websocket(*args, **kwargs):
    raise OSError("no WebSocket in unit tests")


def config(**overrides) -> MakerConfig:
    base = MakerConfig.from_settings(
        dict(settings.MARKET_MAKER)
        | {"API_KEY": "k", "API_SECRET": "s", "MARKETS": ["BTC_USDT"], "START_PRICES": {"BTC_USDT": "60000"}}
        | {"TAKE_PROBABILITY": "0", "WALK_STEP_BPS": "0", "LEVELS": "3", "CYCLE_S": "0.01", "SEED": "1"}
    )
    return dataclasses.replace(base, **overrides)


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def maker(exchange: FakeExchange, clock: Clock | None = None, **overrides) -> MarketMaker:
    return MarketMaker(config(**overrides), exchange, clock=clock or Clock(), connect=no_websocket)


async def started(bot: MarketMaker) -> MarketMaker:
    await bot._bootstrap()
    return bot


@pytest.mark.asyncio
async def test_the_first_cycle_places_a_two_sided_ladder_in_one_batch():
    exchange = FakeExchange()
    bot = await started(maker(exchange))

    await bot.cycle()

    assert "place_batch:6" in exchange.calls and not any(c.startswith("cancel") for c in exchange.calls)
    assert [o["price"] for o in exchange.quotes("buy")] == ["59910.00", "59940.00", "59970.00"]
    assert [o["price"] for o in exchange.quotes("sell")] == ["60030.00", "60060.00", "60090.00"]
    assert all(o["type"] == "limit_maker" for o in exchange.orders.values())
    assert set(bot.orders) == set(exchange.orders)


@pytest.mark.asyncio
async def test_an_unchanged_price_sends_no_order_and_no_cancel():
    exchange = FakeExchange()
    bot = await started(maker(exchange))
    await bot.cycle()
    exchange.calls.clear()

    for _ in range(3):
        await bot.cycle()

    assert not [c for c in exchange.calls if c.startswith(("place", "cancel"))]


@pytest.mark.asyncio
async def test_a_price_move_cancels_and_replaces_only_the_levels_that_moved():
    exchange = FakeExchange()
    bot = await started(maker(exchange))
    await bot.cycle()
    before = set(exchange.orders)
    walk = bot.markets["BTC_USDT"].price_source
    walk.price = D(60_030)  # 5 bps up: one level step

    exchange.calls.clear()
    await bot.cycle()

    assert exchange.calls[-2:] == ["cancel_batch:2", "place_batch:2"]
    assert len(before & set(exchange.orders)) == 4
    assert [o["price"] for o in exchange.quotes("buy")] == ["59940.00", "59970.00", "59999.98"]


@pytest.mark.asyncio
async def test_while_polling_it_resyncs_open_orders_every_cycle_and_replaces_an_order_that_vanished():
    exchange = FakeExchange()
    bot = await started(maker(exchange))
    await bot.cycle()
    gone = exchange.quotes("sell")[0]
    del exchange.orders[gone["id"]]  # filled or cancelled on the exchange, and we were not told

    await bot.cycle()

    assert gone["id"] not in bot.orders
    assert exchange.quotes("sell")[0]["price"] == gone["price"]
    assert len(exchange.orders) == 6


@pytest.mark.asyncio
async def test_orders_that_are_not_quotes_of_the_bot_are_left_alone():
    exchange = FakeExchange()
    exchange.orders[99] = {
        "id": 99,
        "client_order_id": "by-hand",
        "market": "BTC_USDT",
        "side": "buy",
        "price": "100.00",
        "quantity": "1",
        "filled_quantity": "0",
        "status": "open",
    }
    bot = await started(maker(exchange))

    await bot.cycle()

    assert 99 in exchange.orders and 99 not in bot.orders


@pytest.mark.asyncio
async def test_quotes_refused_for_funds_are_counted_and_placed_again_once_funds_return():
    exchange = FakeExchange(usdt="0")
    bot = await started(maker(exchange))
    bot.balances["USDT"] = (D(1_000_000), D(0))  # it believes it has funds the exchange does not

    await bot.cycle()  # the resync corrects the belief before quoting: no bids at all
    assert exchange.quotes("buy") == [] and bot.counters.rejected == 0

    exchange.funds["USDT"][0] = D(1_000_000)
    await bot.cycle()
    assert len(exchange.quotes("buy")) == 3


@pytest.mark.asyncio
async def test_a_refusal_from_the_exchange_is_counted_and_retried_next_cycle():
    exchange = FakeExchange()
    bot = await started(maker(exchange))
    original = exchange._accept
    exchange._accept = lambda body: {"status": 400, "error": {"code": "insufficient_funds", "message": "busy"}}

    await bot.cycle()
    assert bot.counters.rejected == 6 and exchange.orders == {}

    exchange._accept = original
    await bot.cycle()
    assert len(exchange.orders) == 6


@pytest.mark.asyncio
async def test_long_inventory_skews_the_quotes_down():
    exchange = FakeExchange()
    bot = await started(maker(exchange))
    await bot.cycle()
    flat_best_bid = exchange.quotes("buy")[-1]["price"]
    exchange.funds["BTC"][0] += D(1)  # bought 1 BTC (60,000 USDT worth: past the 50,000 limit)

    await bot.cycle()

    assert exchange.quotes("buy") == []  # at the limit the bids stop
    assert D(exchange.quotes("sell")[0]["price"]) < D("60030")
    assert flat_best_bid == "59970.00"


@pytest.mark.asyncio
async def test_taking_sends_a_small_ioc_order_at_the_best_opposite_price():
    exchange = FakeExchange()
    bot = await started(maker(exchange, take_probability=1.0))

    await bot.cycle()

    takers = [c for c in exchange.calls if c == "place"]
    assert takers == ["place"] and bot.counters.takes == 1
    # It took at one of our own best prices (no book known without the WebSocket).
    assert bot.counters.rejected == 0


@pytest.mark.asyncio
async def test_an_exchange_outage_backs_off_then_resyncs_and_quotes_again():
    exchange = FakeExchange()
    bot = await started(maker(exchange))
    await bot.cycle()
    exchange.down = True
    with pytest.raises(ExchangeUnavailable):
        await bot.cycle()
    # While it was down, the exchange lost two of our orders (e.g. they filled).
    for order_id in list(exchange.orders)[:2]:
        del exchange.orders[order_id]
    exchange.down = False

    await bot.cycle()

    assert len(exchange.orders) == 6


@pytest.mark.asyncio
async def test_run_survives_an_outage_and_cancels_its_quotes_on_exit():
    exchange = FakeExchange()
    clock = Clock()
    bot = maker(exchange, clock, backoff_base_s=0.01, backoff_max_s=0.02)
    stop = asyncio.Event()

    async def scenario():
        while not exchange.orders:
            await asyncio.sleep(0.01)
        exchange.down = True
        await asyncio.sleep(0.1)
        assert not bot.exchange_up
        exchange.down = False
        while not bot.exchange_up:
            await asyncio.sleep(0.01)
        stop.set()

    await asyncio.wait_for(asyncio.gather(bot.run(stop), scenario()), timeout=10)

    assert exchange.orders == {}  # cancelled on exit
    assert exchange.closed


@pytest.mark.asyncio
async def test_run_can_leave_its_quotes_on_exit():
    exchange = FakeExchange()
    bot = maker(exchange, cancel_on_exit=False)
    stop = asyncio.Event()

    async def scenario():
        while not exchange.orders:
            await asyncio.sleep(0.01)
        stop.set()

    await asyncio.wait_for(asyncio.gather(bot.run(stop), scenario()), timeout=10)

    assert len(exchange.orders) == 6


@pytest.mark.asyncio
async def test_an_unknown_market_stops_the_bot_with_a_clear_error():
    bot = maker(FakeExchange(), markets=("DOGE_USDT",))

    with pytest.raises(ConfigError, match="no market DOGE_USDT"):
        await bot.run(asyncio.Event())


# What the WebSocket tells the bot.


@pytest.mark.asyncio
async def test_the_subscription_reply_makes_the_websocket_live_and_asks_for_a_resync():
    bot = await started(maker(FakeExchange()))
    bot._resync_due = False

    assert bot.on_ws_message({"result": None, "id": 1})

    assert bot.ws_live and bot._resync_due


def order_event(order_id: int, status: str, **fields) -> dict:
    return {
        "stream": "orders",
        "data": {
            "e": "order",
            "id": order_id,
            "client_order_id": QUOTE_PREFIX + "x",
            "market": "BTC_USDT",
            "side": "sell",
            "type": "limit_maker",
            "status": status,
            "price": "60030",
            "quantity": "0.03333",
            "filled_quantity": "0",
        }
        | fields,
    }


@pytest.mark.asyncio
async def test_order_events_add_update_and_forget_orders_and_an_ended_one_never_comes_back():
    exchange = FakeExchange()
    bot = await started(maker(exchange))

    bot.on_ws_message(order_event(41, "open"))
    bot.on_ws_message(order_event(41, "partially_filled", filled_quantity="0.01"))
    assert bot.orders[41].live().quantity == D("0.02333")

    bot.on_ws_message(order_event(41, "filled", filled_quantity="0.03333"))
    assert 41 not in bot.orders
    # A REST snapshot taken just before the fill still lists it: it stays forgotten.
    exchange.orders[41] = order_event(41, "open")["data"]
    await bot.resync()
    assert 41 not in bot.orders


@pytest.mark.asyncio
async def test_events_of_orders_that_are_not_quotes_or_of_other_markets_are_ignored():
    bot = await started(maker(FakeExchange()))

    bot.on_ws_message(order_event(1, "open", client_order_id=TAKER_PREFIX + "x"))
    bot.on_ws_message(order_event(2, "open", market="ETH_USDT"))

    assert bot.orders == {}


@pytest.mark.asyncio
async def test_fills_are_counted_once_each_and_wake_the_loop():
    bot = await started(maker(FakeExchange()))
    fill = {"e": "fill", "trade_id": 5, "order_id": 9, "market": "BTC_USDT", "side": "buy"}

    bot.on_ws_message({"stream": "fills", "data": fill})
    bot.on_ws_message({"stream": "fills", "data": fill})
    bot.on_ws_message({"stream": "fills", "data": fill | {"order_id": 10, "side": "sell"}})  # a trade with itself

    assert bot.counters.fills == 2 and bot._wake.is_set()


@pytest.mark.asyncio
async def test_fills_missed_by_the_websocket_are_counted_from_rest_once_and_history_is_not():
    exchange = FakeExchange()
    exchange.trades = [{"id": 1, "order_id": 3}]  # before the bot started
    bot = await started(maker(exchange))
    bot.on_ws_message({"stream": "fills", "data": {"trade_id": 2, "order_id": 4, "market": "BTC_USDT"}})
    exchange.trades += [{"id": 2, "order_id": 4}, {"id": 3, "order_id": 6}]

    await bot.resync()
    await bot.resync()

    assert bot.counters.fills == 2  # trade 2 from the WebSocket, trade 3 from REST


@pytest.mark.asyncio
async def test_balance_events_move_inventory_and_pnl():
    exchange = FakeExchange()
    bot = await started(maker(exchange))
    await bot.cycle()

    bot.on_ws_message(
        {
            "stream": "balances",
            "data": {"e": "balances", "balances": [{"asset": "BTC", "available": "100.5", "locked": "0"}]},
        }
    )

    assert bot.portfolio.position("BTC") == D("0.5")
    summary = bot.summary()
    assert summary["inventory"] == "BTC:+0.5"
    assert summary["pnl"] == "USDT:+30000.00"  # 0.5 BTC more at 60,000 and no USDT spent (in this test)
    assert summary["quotes"] == "BTC_USDT:3b/3a" and summary["ws"] == "down"


@pytest.mark.asyncio
async def test_depth_updates_reach_the_local_book_and_error_frames_are_not_fatal():
    bot = await started(maker(FakeExchange()))
    book = bot.markets["BTC_USDT"].book
    book.load_snapshot({"lastUpdateId": 1, "bids": [["59990", "1"]], "asks": []})

    bot.on_ws_message({"stream": "depth@BTC_USDT", "data": {"U": 2, "u": 2, "b": [], "a": [["60010", "2"]]}})
    bot.on_ws_message({"error": {"code": "rate_limited", "msg": "slow down"}, "id": None})

    assert book.best_ask() == D(60010)
    assert bot._best_opposite(bot.markets["BTC_USDT"], "buy") == D(60010)


@pytest.mark.asyncio
async def test_with_the_websocket_live_it_reads_the_book_and_quotes_no_ask_into_someone_elses_bid():
    exchange = FakeExchange()
    exchange.book = {"lastUpdateId": 5, "bids": [["60040", "1"]], "asks": []}
    bot = await started(maker(exchange))
    bot.on_ws_message({"result": None, "id": 1})

    await bot.cycle()

    assert exchange.calls.count("depth") == 1 and bot.markets["BTC_USDT"].book.synced
    assert [o["price"] for o in exchange.quotes("sell")] == ["60060.00", "60090.00"]  # not 60030: it would take
    assert len(exchange.quotes("buy")) == 3

    await bot.cycle()
    assert exchange.calls.count("depth") == 1  # one snapshot, then updates from the stream


@pytest.mark.asyncio
async def test_without_the_websocket_it_asks_for_no_depth_snapshot():
    exchange = FakeExchange()
    exchange.book = {"lastUpdateId": 5, "bids": [], "asks": []}
    bot = await started(maker(exchange))

    await bot.cycle()

    assert "depth" not in exchange.calls and not bot.markets["BTC_USDT"].book.synced
