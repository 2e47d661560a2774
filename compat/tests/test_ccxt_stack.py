"""Unmodified CCXT (and ccxt.pro) against the real stack: daphne (HTTP and WebSockets), the engine, Celery.

The only configuration is what docs/binance-compat.md tells a user to set:
the URLs, and not to load futures, currencies or margin pairs.  Everything
else is CCXT's stock ``binance`` class, talking to our processes over real
sockets.
"""

from __future__ import annotations

import asyncio
import random
import time
from decimal import Decimal

import ccxt
import ccxt.pro
import pytest
from django.db.models import Q

from accounts.models import Balance
from accounts.services import api_key_create
from marketdata import selectors as marketdata
from orders.models import Order, Trade
from tests.factories import UserFactory, fund
from tests.stack import LiveStack

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def ccxt_options(stack: LiveStack, key: str | None = None, secret: str | None = None) -> dict:
    """The configuration docs/binance-compat.md gives: base URLs, and spot markets only."""
    http, ws = stack.url(""), stack.ws_url("")
    config = {
        "urls": {
            "api": {
                "public": f"{http}/api/v3",
                "private": f"{http}/api/v3",
                "sapi": f"{http}/sapi/v1",
                "ws": {"spot": f"{ws}/binance/ws", "ws-api": {"spot": f"{ws}/binance/ws-api/v3"}},
            }
        },
        "options": {"fetchMarkets": ["spot"], "fetchCurrencies": False, "fetchMargins": False},
        "timeout": 10_000,
    }
    if key is not None:
        config |= {"apiKey": key, "secret": secret}
    return config


def trader(username: str, btc, usdt) -> tuple[str, str]:
    user = UserFactory(username=username)
    fund(user, btc, Decimal(10))
    fund(user, usdt, Decimal(100_000))
    key, secret = api_key_create(user=user, label="ccxt")
    return key.key, secret


def settled() -> bool:
    return not Order.objects.filter(status=Order.Status.PENDING).exists()


def test_ccxt_rest_trades_against_the_stack(market, btc, usdt):
    alice_key, alice_secret = trader("alice", btc, usdt)
    bob_key, bob_secret = trader("bob", btc, usdt)
    with LiveStack(web=True, engine=True, celery=True) as stack:
        alice = ccxt.binance(ccxt_options(stack, alice_key, alice_secret))
        bob = ccxt.binance(ccxt_options(stack, bob_key, bob_secret))
        public = ccxt.binance(ccxt_options(stack))

        markets = public.load_markets()
        assert list(markets) == ["BTC/USDT"]
        btc_usdt = markets["BTC/USDT"]
        assert (btc_usdt["id"], btc_usdt["spot"], btc_usdt["active"]) == ("BTCUSDT", True, True)
        precision = btc_usdt["precision"]
        assert (precision["amount"], precision["price"], precision["base"]) == (0.001, 0.01, 1e-08)
        assert btc_usdt["limits"]["cost"]["min"] == 1.0 and btc_usdt["limits"]["amount"]["min"] == 0.001
        assert abs(public.fetch_time() - time.time() * 1000) < 5000
        assert public.fetch_status()["status"] == "ok"

        # Bob makes a market; a FULL answer (CCXT's default) waits for the engine, so it says "open".
        ask = bob.create_order("BTC/USDT", "limit", "sell", 0.5, 101)
        bid = bob.create_order("BTC/USDT", "limit", "buy", 0.5, 99)
        assert (ask["status"], bid["status"], ask["remaining"]) == ("open", "open", 0.5)
        book = public.fetch_order_book("BTC/USDT")
        assert (book["bids"], book["asks"]) == ([[99.0, 0.5]], [[101.0, 0.5]])
        assert book["nonce"] == marketdata.depth_snapshot(symbol="BTC_USDT", limit=1)["lastUpdateId"]

        # Limit that crosses: filled at once, with its fill and fee in the answer.
        taken = alice.create_order("BTC/USDT", "limit", "buy", 0.1, 101)
        assert (taken["status"], taken["filled"], taken["average"]) == ("closed", 0.1, 101.0)
        assert taken["trades"][0]["fee"] == {"cost": 0.0002, "currency": "BTC"}  # taker 0.2% of 0.1 BTC
        # Market by quantity, and market buy by cost (quoteOrderQty).
        market_buy = alice.create_order("BTC/USDT", "market", "buy", 0.1)
        assert (market_buy["status"], market_buy["filled"]) == ("closed", 0.1)
        by_cost = alice.create_market_buy_order_with_cost("BTC/USDT", 20)
        assert by_cost["status"] == "closed" and by_cost["cost"] <= 20 and by_cost["filled"] == 0.198
        # IOC: takes what rests (0.102 left at 101) and expires the rest.
        ioc = alice.create_order("BTC/USDT", "limit", "buy", 0.2, 101, {"timeInForce": "IOC"})
        assert (ioc["status"], ioc["filled"], ioc["timeInForce"]) == ("expired", 0.102, "IOC")
        # Post-only: rests when it would not take; refused like Binance when it would.
        resting = alice.create_order("BTC/USDT", "limit", "sell", 0.05, 105, {"postOnly": True})
        assert (resting["status"], resting["postOnly"], resting["type"]) == ("open", True, "limit")
        with pytest.raises(ccxt.OrderImmediatelyFillable):
            alice.create_order("BTC/USDT", "limit", "sell", 0.05, 99, {"postOnly": True})

        fetched = alice.fetch_order(resting["id"], "BTC/USDT")
        assert (fetched["id"], fetched["status"], fetched["price"], fetched["amount"]) == (
            resting["id"],
            "open",
            105.0,
            0.05,
        )
        assert [o["id"] for o in alice.fetch_open_orders("BTC/USDT")] == [resting["id"]]
        trades = alice.fetch_my_trades("BTC/USDT")
        assert len(trades) == Trade.objects.filter(buyer__username="alice").count() == 4
        assert {t["side"] for t in trades} == {"buy"} and all(t["takerOrMaker"] == "taker" for t in trades)
        cancelled = alice.cancel_order(resting["id"], "BTC/USDT")
        assert (cancelled["id"], cancelled["status"]) == (resting["id"], "canceled")
        assert alice.fetch_open_orders("BTC/USDT") == []
        for price in (95, 96):
            alice.create_order("BTC/USDT", "limit", "buy", 0.05, price)
        swept = alice.cancel_all_orders("BTC/USDT")
        assert sorted(o["price"] for o in swept) == [95.0, 96.0] and {o["status"] for o in swept} == {"canceled"}

        # Balances agree with the database.
        balance = alice.fetch_balance()
        for asset in ("BTC", "USDT"):
            row = Balance.objects.get(user__username="alice", asset__symbol=asset)
            assert Decimal(str(balance[asset]["free"])) == row.available
            assert Decimal(str(balance[asset]["used"])) == row.locked

        # Public market data.
        ticker = public.fetch_ticker("BTC/USDT")
        assert (ticker["last"], ticker["bid"], ticker["ask"]) == (101.0, 99.0, None)  # the asks were all taken
        assert public.fetch_tickers()["BTC/USDT"]["baseVolume"] == pytest.approx(0.5)
        recent = public.fetch_trades("BTC/USDT")
        assert [t["id"] for t in recent] == ["1", "2", "3", "4"]
        assert recent[0]["side"] == "buy" and recent[0]["price"] == 101.0

        def candles() -> list:
            return public.fetch_ohlcv("BTC/USDT", "1m")

        stack.wait_until(lambda: bool(candles()) and candles()[-1][5] == pytest.approx(0.5), timeout=20,
                         what="Celery to aggregate the trades into a candle")  # fmt: skip
        assert candles()[-1][2] == 101.0

        # Errors arrive as the CCXT exception classes a bot written for Binance expects.
        with pytest.raises(ccxt.InsufficientFunds):
            alice.create_order("BTC/USDT", "limit", "buy", 1000, 101)
        with pytest.raises(ccxt.InvalidOrder):  # -1013 PERCENT_PRICE: 1000 is far outside the 50% band
            alice.create_order("BTC/USDT", "limit", "buy", 0.01, 1000)
        with pytest.raises(ccxt.OrderNotFound):
            alice.fetch_order("999999", "BTC/USDT")
        with pytest.raises(ccxt.OrderNotFound):
            alice.cancel_order(bid["id"], "BTC/USDT")  # Bob's order: as unknown to Alice as a missing one
        with pytest.raises(ccxt.InvalidOrder):  # sent raw: CCXT itself would round to the tick first
            alice.private_post_order(
                {
                    "symbol": "BTCUSDT",
                    "side": "BUY",
                    "type": "LIMIT",
                    "timeInForce": "GTC",
                    "quantity": "0.01",
                    "price": "100.005",
                }
            )
        with pytest.raises(ccxt.InvalidOrder):
            alice.private_post_order({"symbol": "BTCUSDT", "side": "BUY", "type": "MARKET", "quantity": "0.0001"})
        with pytest.raises(ccxt.BadSymbol):
            public.public_get_depth({"symbol": "DOGEUSDT"})
        with pytest.raises(ccxt.AuthenticationError):
            ccxt.binance(ccxt_options(stack, alice_key, "wrong-secret")).fetch_balance()
        with pytest.raises(ccxt.AuthenticationError):
            ccxt.binance(ccxt_options(stack, "wrong-key", alice_secret)).fetch_balance()
        assert settled()


def test_ccxt_pro_streams_against_the_stack(market, btc, usdt):
    alice_key, alice_secret = trader("alice", btc, usdt)
    bob_key, bob_secret = trader("bob", btc, usdt)
    with LiveStack(web=True, engine=True, celery=True) as stack:
        asyncio.run(_pro_session(stack, (alice_key, alice_secret), (bob_key, bob_secret)))
        stack.wait_until(settled, timeout=10, what="the engine to settle every order")
    alice_trades = set(
        Trade.objects.filter(Q(buyer__username="alice") | Q(seller__username="alice")).values_list(
            "trade_id", flat=True
        )
    )
    assert alice_trades, "the flow should make Alice trade"


async def _pro_session(stack: LiveStack, alice_credentials, bob_credentials) -> None:
    alice = ccxt.pro.binance(ccxt_options(stack, *alice_credentials))
    bob = ccxt.pro.binance(ccxt_options(stack, *bob_credentials))
    public = ccxt.pro.binance(ccxt_options(stack))
    try:
        await asyncio.gather(public.load_markets(), alice.load_markets(), bob.load_markets())
        first = await public.watch_order_book("BTC/USDT")
        assert (first["bids"], first["asks"]) == ([], [])
        watches = {
            "trades": public.watch_trades("BTC/USDT"),
            "ticker": public.watch_ticker("BTC/USDT"),
            "ohlcv": public.watch_ohlcv("BTC/USDT", "1m"),
            "balance": alice.watch_balance(),
            "orders": alice.watch_orders("BTC/USDT"),
            "my_trades": alice.watch_my_trades("BTC/USDT"),
        }
        tasks = {name: asyncio.ensure_future(watch) for name, watch in watches.items()}
        follow = asyncio.ensure_future(_follow_book(public))
        await _random_flow(alice, bob, random.Random(7), orders=40)
        # One more trade of Alice's, placed when every subscription is surely live, against Bob (the
        # random flow lets her trade with herself too, and CCXT keeps one of a self-trade's two sides).
        if await alice.fetch_open_orders("BTC/USDT"):
            await alice.cancel_all_orders("BTC/USDT")
        await bob.create_order("BTC/USDT", "limit", "sell", 0.01, 100)
        taken = await alice.create_order("BTC/USDT", "limit", "buy", 0.01, 103)
        assert taken["status"] == "closed"
        results = dict(zip(tasks, await asyncio.wait_for(asyncio.gather(*tasks.values()), timeout=20), strict=True))

        # The book CCXT keeps from the diff stream equals the REST snapshot, level for level.
        rest = await public.fetch_order_book("BTC/USDT", 1000)
        deadline = time.monotonic() + 10
        while public.orderbooks["BTC/USDT"]["nonce"] < rest["nonce"]:
            assert time.monotonic() < deadline, "the diff stream never caught up with the snapshot"
            await asyncio.sleep(0.05)
        follow.cancel()
        local = public.orderbooks["BTC/USDT"]
        assert local["nonce"] == rest["nonce"]
        assert (local["bids"][:], local["asks"][:]) == (rest["bids"], rest["asks"])
        assert rest["bids"] and rest["asks"], "the flow should leave a two-sided book"

        trades = results["trades"]
        assert trades and all(t["symbol"] == "BTC/USDT" and t["price"] > 0 for t in trades)
        assert results["ticker"]["symbol"] == "BTC/USDT" and results["ticker"]["last"] > 0
        assert results["ohlcv"] and results["ohlcv"][-1][5] > 0  # [time, open, high, low, close, volume]
        assert results["balance"]["BTC"]["total"] > 0 and "USDT" in results["balance"]
        orders = results["orders"]
        assert orders and {o["symbol"] for o in orders} == {"BTC/USDT"}
        my_trades = results["my_trades"]
        assert my_trades and all(t["order"] for t in my_trades)
        # Later events keep flowing into the same caches: the last trade is there, with its fee.
        deadline = time.monotonic() + 10
        while taken["id"] not in {t["order"] for t in alice.myTrades}:
            assert time.monotonic() < deadline, "Alice's last trade never reached watch_my_trades"
            await asyncio.sleep(0.05)
        last = next(t for t in alice.myTrades if t["order"] == taken["id"])
        assert (last["side"], last["amount"], last["fee"]["currency"]) == ("buy", 0.01, "BTC")
        final = next(o for o in alice.orders if o["id"] == taken["id"])
        assert (final["status"], final["filled"]) == ("closed", 0.01)
    finally:
        await asyncio.gather(alice.close(), bob.close(), public.close())


async def _follow_book(exchange) -> None:
    """Keep CCXT's local book current (a gap in update ids would raise here and fail the test)."""
    while True:
        await exchange.watch_order_book("BTC/USDT")


async def _random_flow(alice, bob, rng: random.Random, *, orders: int) -> None:
    for _ in range(orders):
        client = rng.choice((alice, bob))
        side = rng.choice(("buy", "sell"))
        price = 100 + rng.randint(-30, 30) / 10
        order = await client.create_order("BTC/USDT", "limit", side, rng.randint(10, 200) / 1000, price)
        if order["status"] == "open" and rng.random() < 0.3:
            await client.cancel_order(order["id"], "BTC/USDT")
