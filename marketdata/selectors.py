"""Reads of market data kept in Redis by the engine (rebuildable read models)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from django.db import connection

from exchange_site.redis import get_redis
from marketdata.models import Kline
from markets.models import Market


def reference_key(symbol: str) -> str:
    return f"md:{{{symbol}}}:reference"


def reference_prices(*, symbol: str) -> dict[str, Decimal]:
    """Best bid, best ask and last trade price of ``symbol`` as the engine last committed them."""
    raw = get_redis().hgetall(reference_key(symbol))
    return {key.decode(): Decimal(value.decode()) for key, value in raw.items() if value}


# --- candles (klines), kept in PostgreSQL by marketdata.services -------------------------


def klines_list(
    *, market: Market, interval: str, start: dt.datetime | None, end: dt.datetime | None, limit: int
) -> list[Kline]:
    """Up to ``limit`` candles of ``market`` opening in [start, end], oldest first.

    With a start: the first ``limit`` from it; without: the last ``limit`` up to
    the end (or now), as Binance does.  Buckets without trades have no candle.
    """
    candles = Kline.objects.filter(market=market, interval=interval)
    if start is not None:
        candles = candles.filter(open_time__gte=start)
    if end is not None:
        candles = candles.filter(open_time__lte=end)
    if start is not None:
        return list(candles.order_by("open_time")[:limit])
    return list(candles.order_by("-open_time")[:limit])[::-1]


def markets_with_unaggregated_trades() -> list[tuple[str, dt.datetime]]:
    """``(symbol, earliest trade time)`` of every market with trades that no candle covers yet.

    A trade is covered once its id is at most the highest ``last_trade_id`` of
    the market's weekly candles (written last, in the same transaction as the
    finer ones; trade ids grow with each market's counter).  Both sides are
    index probes: the weekly rows of a market, and its trades past that id.
    """
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT m.symbol, behind.earliest FROM markets_market AS m,"
            " LATERAL (SELECT min(t.executed_at) AS earliest FROM orders_trade AS t"
            "  WHERE t.market_id = m.id AND t.trade_id > COALESCE("
            "   (SELECT max(k.last_trade_id) FROM marketdata_kline AS k"
            "     WHERE k.market_id = m.id AND k.interval = '1w'), 0)) AS behind"
            " WHERE behind.earliest IS NOT NULL ORDER BY m.symbol"
        )
        return cursor.fetchall()
