"""Issue 6's promise: the demo exchange is alive on its own.

The whole stack as `dev.py run` starts it (daphne for HTTP and WebSockets, the
engine, a Celery worker and beat, the market maker with the demo key) on the
demo data: within a bounded time every demo market has a two-sided book,
trades happen and a one-minute candle closes; after an engine restart the
market maker quotes again.  Takes about a minute (a candle must close).
"""

from __future__ import annotations

import time

import pytest

from accounts.models import User
from exchange_site.demo import seed_demo
from marketdata.models import Kline
from markets.models import Market
from orders.models import Order, Trade
from tests.stack import HttpClient, LiveStack

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def two_sided(symbol: str, maker_id: int, *, placed_after: int = 0) -> bool:
    live = Order.objects.filter(
        market__symbol=symbol, user_id=maker_id, status__in=(Order.Status.OPEN, Order.Status.PARTIALLY_FILLED),
        pk__gt=placed_after,
    )  # fmt: skip
    return live.filter(side="buy").exists() and live.filter(side="sell").exists()


def test_the_demo_quotes_trades_and_closes_candles_and_survives_an_engine_restart(tmp_path, monkeypatch):
    monkeypatch.setenv("EXCHANGE_DATA_DIR", str(tmp_path))  # the demo key file, not the developer's
    demo = seed_demo()
    maker_id = User.objects.get(username="marketmaker").pk
    symbols = list(Market.objects.values_list("symbol", flat=True))
    assert sorted(symbols) == ["BTC_USDT", "ETH_USDT"]

    stack = LiveStack(web=True, engine=True, celery=True, beat=True, commands={"maker": ["run_market_maker"]})
    stack.env |= {
        "MARKET_MAKER_API_URL": stack.url(""),
        "MARKET_MAKER_WS_URL": stack.ws_url("/ws"),
        "MARKET_MAKER_API_KEY": demo["market_maker"]["key"],
        "MARKET_MAKER_API_SECRET": demo["market_maker"]["secret"],
        "MARKET_MAKER_TAKE_PROBABILITY": "0.5",
        "MARKET_MAKER_CYCLE_S": "0.5",
        "MARKET_MAKER_BACKOFF_MAX_S": "1",
    }
    with stack:
        started = time.time()
        for symbol in symbols:
            stack.wait_until(lambda s=symbol: two_sided(s, maker_id), timeout=30, what=f"a two-sided book on {symbol}")
        for symbol in symbols:
            stack.wait_until(
                lambda s=symbol: Trade.objects.filter(market__symbol=s).exists(),
                timeout=30,
                what=f"a trade on {symbol}",
            )
        http = HttpClient(stack)
        depth = http.get("/api/v1/markets/BTC_USDT/depth")
        assert depth["bids"] and depth["asks"], depth

        # A candle closes when its minute is over: at most ~60 s after the first trade.
        def closed_candle() -> bool:
            now = time.time()
            return any(
                kline.close_time.timestamp() < now
                for kline in Kline.objects.filter(interval="1m", market__symbol="BTC_USDT")
            )

        stack.wait_until(closed_candle, timeout=75, what="a closed 1m candle", interval=0.5)
        candles = http.get("/api/v1/markets/BTC_USDT/klines?interval=1m")
        assert candles and int(candles[0]["close_time"]) < time.time() * 1000
        assert time.time() - started < 120

        last_order = Order.objects.latest("pk").pk
        stack.restart("engine")
        for symbol in symbols:
            stack.wait_until(
                lambda s=symbol: two_sided(s, maker_id, placed_after=last_order),
                timeout=45,
                what=f"the market maker to quote {symbol} again after the engine restart",
            )
