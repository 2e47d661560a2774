"""Writes of market data kept in PostgreSQL: candles (klines) aggregated from trades.

``aggregate_klines`` recomputes, set-based, every candle whose bucket holds a
trade at or after ``since``.  Recomputing is idempotent: each candle is a
function of the trades in its bucket, so running it twice, or twice at once,
or over a range that was already done, writes the same rows.

The 1-minute candles come from ``orders_trade``; each coarser interval is
rolled up from the one below (5m from 1m, 15m from 5m, 1h from 15m, 4h from
1h, 1d from 4h, 1w from 1d).  Every bucket is a union of whole buckets of the
finer interval (all share the origin Monday 2000-01-03 00:00 UTC), so the
result equals aggregating the trades directly, but recomputing the current
week reads at most seven daily rows instead of a week of trades.  Open and
close come from the sub-candle holding the lowest and highest trade id, so
"open = price of the lowest trade id" holds through the roll-up.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from django.db import connection, transaction

from marketdata.models import INTERVALS, Kline

# Buckets are ``date_bin(interval, time, ORIGIN)``: a Monday at midnight UTC, so
# days start at 00:00 UTC and weeks on Monday, as TimescaleDB's time_bucket does.
ORIGIN = dt.datetime(2000, 1, 3, tzinfo=dt.UTC)
# (interval, the interval it is rolled up from; None: from the trades)
ROLLUPS: tuple[tuple[str, str | None], ...] = (
    ("1m", None),
    ("5m", "1m"),
    ("15m", "5m"),
    ("1h", "15m"),
    ("4h", "1h"),
    ("1d", "4h"),
    ("1w", "1d"),
)
# Advisory lock namespace (first key of pg_advisory_xact_lock(int, int)); the second is the market id.
KLINE_LOCK = 0x4B4C  # "KL"

_COLUMNS = (
    "market_id, interval, open_time, close_time, open, high, low, close, volume, quote_volume, trades,"
    " first_trade_id, last_trade_id"
)
_CHANGED = ("close_time", "open", "high", "low", "close", "volume", "quote_volume", "trades", "first_trade_id",
            "last_trade_id")  # fmt: skip

# Both statements produce, per bucket: open, high, low, close, volume, quote volume,
# trade count, first and last trade id; they differ only in what they read.
_FROM_TRADES = """
    SELECT date_bin(%(stride)s, executed_at, %(origin)s) AS bucket,
           (array_agg(price ORDER BY trade_id))[1], max(price), min(price),
           (array_agg(price ORDER BY trade_id DESC))[1],
           sum(quantity), sum(quote_quantity), count(*), min(trade_id), max(trade_id)
      FROM orders_trade
     WHERE market_id = %(market)s AND executed_at >= date_bin(%(stride)s, %(since)s, %(origin)s)
     GROUP BY 1
"""
_FROM_FINER = """
    SELECT date_bin(%(stride)s, open_time, %(origin)s) AS bucket,
           (array_agg(open ORDER BY first_trade_id))[1], max(high), min(low),
           (array_agg(close ORDER BY last_trade_id DESC))[1],
           sum(volume), sum(quote_volume), sum(trades), min(first_trade_id), max(last_trade_id)
      FROM marketdata_kline
     WHERE market_id = %(market)s AND interval = %(finer)s
       AND open_time >= date_bin(%(stride)s, %(since)s, %(origin)s)
     GROUP BY 1
"""


def upsert_sql(source: str) -> str:
    """``INSERT ... SELECT`` of the buckets ``source`` computes, updating rows that changed only.

    ``RETURNING`` then gives exactly the candles that are new or different,
    which are the ones worth pushing to clients.
    """
    changed = ", ".join(f"{name} = EXCLUDED.{name}" for name in _CHANGED)
    old = ", ".join(f"k.{name}" for name in _CHANGED)
    new = ", ".join(f"EXCLUDED.{name}" for name in _CHANGED)
    return (
        f"INSERT INTO marketdata_kline AS k ({_COLUMNS})"
        " SELECT %(market)s, %(interval)s, b.bucket, b.bucket + %(stride)s - interval '1 millisecond',"
        " b.o, b.h, b.l, b.c, b.v, b.q, b.n, b.f, b.ll"
        f" FROM ({source}) AS b (bucket, o, h, l, c, v, q, n, f, ll)"
        f" ON CONFLICT (market_id, interval, open_time) DO UPDATE SET {changed}"
        f" WHERE ({old}) IS DISTINCT FROM ({new})"
        f" RETURNING {_COLUMNS}"
    )


_STATEMENTS = {interval: upsert_sql(_FROM_TRADES if finer is None else _FROM_FINER) for interval, finer in ROLLUPS}


def aggregate_klines(*, market_id: int, since: dt.datetime) -> list[Kline]:
    """Recompute every candle of ``market_id`` whose bucket holds trades at or after ``since``.

    Returns the candles inserted or changed (oldest interval first, then by
    time), after the transaction committed.  Runs for one market are
    serialized by an advisory lock, and each statement reads after taking it:
    a run that started earlier can never overwrite a newer run's candles with
    values computed from fewer trades.
    """
    written: list[Kline] = []
    with transaction.atomic(durable=True), connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [KLINE_LOCK, market_id])
        for interval, finer in ROLLUPS:
            params = {
                "market": market_id,
                "interval": interval,
                "finer": finer,
                "stride": INTERVALS[interval],
                "origin": ORIGIN,
                "since": since,
            }
            cursor.execute(_STATEMENTS[interval], params)
            written += sorted((_kline(row) for row in cursor.fetchall()), key=lambda k: k.open_time)
    return written


def _kline(row: Sequence) -> Kline:
    names = [name.strip() for name in _COLUMNS.split(",")]
    return Kline(**dict(zip(names, row, strict=True)))
