"""Reads of market data kept in Redis by the engine (rebuildable read models).

All keys of one market share the hash tag ``{SYMBOL}`` so Redis Cluster keeps
them on one node, and a snapshot can be read atomically.
"""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from typing import Any

from django.db import connection

from exchange_site.redis import get_redis
from marketdata.models import Kline
from markets.models import Market

TRADES_KEPT = 500


def reference_key(symbol: str) -> str:
    return f"md:{{{symbol}}}:reference"


def depth_keys(symbol: str) -> tuple[str, str, str, str, str]:
    """Bid prices (zset scored by ticks), ask prices, bid quantities (hash), ask quantities, last update id."""
    tag = f"md:{{{symbol}}}:depth"
    return f"{tag}:bids", f"{tag}:asks", f"{tag}:bidq", f"{tag}:askq", f"{tag}:id"


def trades_key(symbol: str) -> str:
    return f"md:{{{symbol}}}:trades"


def ticker_key(symbol: str) -> str:
    return f"md:{{{symbol}}}:ticker"


def reference_prices(*, symbol: str) -> dict[str, Decimal]:
    """Best bid, best ask and last trade price of ``symbol`` as the engine last committed them."""
    raw = get_redis().hgetall(reference_key(symbol))
    return {key.decode(): Decimal(value.decode()) for key, value in raw.items() if value}


# One atomic read of the best ``n`` levels per side and the update id they belong to:
# the engine writes levels and id in one MULTI, so a snapshot never mixes two batches.
_DEPTH_SNAPSHOT = """
local n = tonumber(ARGV[1])
local bids = redis.call('ZREVRANGE', KEYS[1], 0, n - 1)
local asks = redis.call('ZRANGE', KEYS[2], 0, n - 1)
local bq, aq = {}, {}
if #bids > 0 then bq = redis.call('HMGET', KEYS[3], unpack(bids)) end
if #asks > 0 then aq = redis.call('HMGET', KEYS[4], unpack(asks)) end
return {redis.call('GET', KEYS[5]) or '0', bids, bq, asks, aq}
"""


def depth_snapshot(*, symbol: str, limit: int) -> dict[str, Any]:
    """``{"lastUpdateId", "bids", "asks"}``, best levels first, as the engine last committed them."""
    return _depth(get_redis().eval(_DEPTH_SNAPSHOT, 5, *depth_keys(symbol), limit))


def _depth(reply: list) -> dict[str, Any]:
    update_id, bids, bid_qty, asks, ask_qty = reply
    return {
        "lastUpdateId": int(update_id),
        "bids": [[p.decode(), q.decode()] for p, q in zip(bids, bid_qty, strict=True)],
        "asks": [[p.decode(), q.decode()] for p, q in zip(asks, ask_qty, strict=True)],
    }


def depth_snapshots(*, symbols: list[str], limit: int) -> dict[str, dict[str, Any]]:
    """``depth_snapshot`` of several markets in one round trip (e.g. every market's best bid and ask)."""
    pipe = get_redis().pipeline(transaction=False)
    for symbol in symbols:
        pipe.eval(_DEPTH_SNAPSHOT, 5, *depth_keys(symbol), limit)
    return {symbol: _depth(reply) for symbol, reply in zip(symbols, pipe.execute(), strict=True)}


def last_trades(*, symbols: list[str]) -> dict[str, dict[str, Any] | None]:
    """The latest trade of each market (as ``recent_trades`` shows it; None if it has none), in one round trip."""
    pipe = get_redis().pipeline(transaction=False)
    for symbol in symbols:
        pipe.lindex(trades_key(symbol), -1)
    return {symbol: json.loads(raw) if raw else None for symbol, raw in zip(symbols, pipe.execute(), strict=True)}


def recent_trades(*, symbol: str, limit: int) -> list[dict[str, Any]]:
    """The last ``limit`` trades of ``symbol``, oldest first."""
    return [json.loads(raw) for raw in get_redis().lrange(trades_key(symbol), -limit, -1)]


def tickers(*, symbols: list[str]) -> list[dict[str, Any]]:
    """The 24h tickers the engines last published; markets whose engine never ran are left out."""
    if not symbols:
        return []
    raw = get_redis().mget([ticker_key(symbol) for symbol in symbols])
    return [json.loads(value) for value in raw if value is not None]


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
