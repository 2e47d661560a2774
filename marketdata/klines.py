"""When candles are recomputed: the engine notes new trades, a Celery task aggregates and pushes them.

The protocol, per market, around one Redis hash ``md:{SYMBOL}:klines_dirty``:

``from``
    the earliest trade time (µs since the epoch) noted and not yet claimed;
``claimed``
    the start of the range the current (or a crashed) run is aggregating;
``seq``
    bumped by every note.

1. ``note_trades`` (the engine, after each committed batch with trades) lowers
   ``from`` to the batch's earliest trade time and bumps ``seq``, atomically.
   If that created the hash, no run is pending: it enqueues ``aggregate_market``.
2. ``run_market`` (the task) claims: start = min(from, claimed), stored as
   ``claimed``, ``from`` removed; it aggregates from start (committed), pushes
   the candles it changed, then finishes: if ``seq`` is what it claimed with,
   nothing was noted meanwhile and it deletes the hash; otherwise it drops
   ``claimed`` (done) and claims again, from the ``from`` the newer notes
   left, so a run that never goes idle still only re-reads recent trades.
3. A note is only removed by a finish that started its aggregation after the
   note (a claim after it, and each claim's statements read after it), and a
   crash keeps ``claimed``, so no noted trade is ever left out.

Runs of one market never overlap: each holds a PostgreSQL advisory lock for
its market (session level: it dies with a killed worker's connection).  A run
that finds the lock taken leaves at once, and a run that releases it checks
whether the market is dirty again and, if so, enqueues the next run: so a
note that arrives just as a run ends is never orphaned.  A run also stops
after ``KLINES_RUN_BUDGET_S`` and re-enqueues itself, so one busy market
cannot hold a worker forever.

``sweep`` (Celery beat, every few seconds) covers what can still go wrong:
a task lost with a killed worker or a broker hiccup (the hash exists, nothing
runs), and a note lost with Redis itself (trades in the database that no
weekly candle covers yet): it notes those and enqueues a run for every dirty
market.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass

from django.conf import settings
from django.db import connection
from django.utils import timezone

from exchange_site.amounts import plain
from exchange_site.redis import get_redis
from marketdata import broadcast, selectors, streams
from marketdata.models import INTERVALS, Kline
from marketdata.services import KLINE_LOCK, aggregate_klines
from markets.models import Market

logger = logging.getLogger(__name__)

EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_MICROSECOND = dt.timedelta(microseconds=1)

# KEYS[1] the hash, ARGV[1] the earliest trade time (µs).  Returns 1 if it created the hash.
_NOTE = """
local created = redis.call('EXISTS', KEYS[1]) == 0
local current = redis.call('HGET', KEYS[1], 'from')
if not current or tonumber(ARGV[1]) < tonumber(current) then
  redis.call('HSET', KEYS[1], 'from', ARGV[1])
end
redis.call('HINCRBY', KEYS[1], 'seq', 1)
if created then return 1 end
return 0
"""
# Returns {start, seq}, or nil when there is nothing to do.
_CLAIM = """
local seq = redis.call('HGET', KEYS[1], 'seq')
if not seq then return false end
local start = redis.call('HGET', KEYS[1], 'from')
local claimed = redis.call('HGET', KEYS[1], 'claimed')
if claimed and (not start or tonumber(claimed) < tonumber(start)) then start = claimed end
if not start then
  redis.call('DEL', KEYS[1])
  return false
end
redis.call('HSET', KEYS[1], 'claimed', start)
redis.call('HDEL', KEYS[1], 'from')
return {start, seq}
"""
# ARGV[1] the seq the run claimed with.  Returns 1 if the market is clean (hash deleted).
_FINISH = """
if redis.call('HGET', KEYS[1], 'seq') == ARGV[1] then
  redis.call('DEL', KEYS[1])
  return 1
end
redis.call('HDEL', KEYS[1], 'claimed')
return 0
"""


def dirty_key(symbol: str) -> str:
    return f"md:{{{symbol}}}:klines_dirty"


def to_micros(moment: dt.datetime) -> int:
    """Exact µs since the epoch (no float on the way: a float timestamp is off by one µs at times)."""
    return (moment - EPOCH) // _MICROSECOND


def from_micros(micros: int) -> dt.datetime:
    return EPOCH + dt.timedelta(microseconds=micros)


def to_millis(moment: dt.datetime) -> int:
    return (moment - EPOCH) // dt.timedelta(milliseconds=1)


# --- noting trades (the engine) ----------------------------------------------------------


def note_trades(*, symbol: str, earliest: dt.datetime) -> None:
    """Mark ``symbol``'s candles from ``earliest`` on as stale; enqueue a run unless one is pending.

    Call after the transaction that wrote the trades committed (a run started
    before the commit would not see them), with the earliest ``executed_at``
    among them.  One Redis round trip, plus one broker write when a run must
    be enqueued.  Never raises: the trades are committed, and ``sweep`` finds
    whatever a failure here leaves behind.
    """
    try:
        if _note(symbol, earliest):
            enqueue(symbol)
    except Exception:
        logger.exception("noting trades for candles failed", extra={"market": symbol})


def _note(symbol: str, earliest: dt.datetime) -> bool:
    return bool(get_redis().eval(_NOTE, 1, dirty_key(symbol), to_micros(earliest)))


def enqueue(symbol: str) -> None:
    """Ask a Celery worker to run ``run_market(symbol)``.

    No publish retries: the engine calls this and must not stall on a broker
    outage; the dirty hash stays, and ``sweep`` enqueues again.
    """
    from marketdata.tasks import aggregate_market  # the tasks module imports this one

    aggregate_market.apply_async(args=[symbol], retry=False)


# --- aggregating (the Celery task) -------------------------------------------------------


@dataclass(frozen=True)
class Claim:
    start: dt.datetime
    seq: bytes


def claim(symbol: str) -> Claim | None:
    """Take the range to aggregate (it stays recorded as ``claimed`` until ``finish``), or None if clean."""
    reply = get_redis().eval(_CLAIM, 1, dirty_key(symbol))
    if reply is None:
        return None
    start, seq = reply
    return Claim(start=from_micros(int(start)), seq=seq)


def finish(symbol: str, done: Claim) -> bool:
    """After the claimed range is aggregated: True if nothing was noted since (the market is clean)."""
    return bool(get_redis().eval(_FINISH, 1, dirty_key(symbol), done.seq))


def run_market(*, symbol: str, budget_s: float | None = None) -> int:
    """Aggregate and push ``symbol``'s stale candles until it is clean; returns the candles pushed.

    Leaves at once if another run holds the market (that one finishes the work).
    """
    market_id = Market.objects.filter(symbol=symbol).values_list("id", flat=True).first()
    if market_id is None:
        logger.warning("candles noted for an unknown market; dropped", extra={"market": symbol})
        get_redis().delete(dirty_key(symbol))
        return 0
    budget = settings.EXCHANGE["KLINES_RUN_BUDGET_S"] if budget_s is None else budget_s
    if not _try_lock(market_id):
        return 0
    pushed = 0
    try:
        deadline = time.monotonic() + budget
        while (taken := claim(symbol)) is not None:
            candles = aggregate_klines(market_id=market_id, since=taken.start)
            publish_klines(symbol=symbol, candles=candles)
            pushed += len(candles)
            if finish(symbol, taken) or time.monotonic() >= deadline:
                break
    finally:
        _unlock(market_id)
    # After the lock is released: a note that came while we held it may have had
    # its own run leave at once (lock taken); whatever is dirty now needs a run.
    if get_redis().exists(dirty_key(symbol)):
        enqueue(symbol)
    return pushed


def _try_lock(market_id: int) -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s, %s)", [KLINE_LOCK, market_id])
        return cursor.fetchone()[0]


def _unlock(market_id: int) -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_unlock(%s, %s)", [KLINE_LOCK, market_id])


def sweep() -> list[str]:
    """Note trades no candle covers yet, and enqueue a run for every dirty market; returns their symbols.

    Runs from Celery beat.  Cheap when all is well: one statement (two index
    probes per market) and one pipelined ``EXISTS`` per market.
    """
    enqueued: list[str] = []
    behind = selectors.markets_with_unaggregated_trades()
    for symbol, earliest in behind:
        if _note(symbol, earliest):
            enqueue(symbol)
            enqueued.append(symbol)
    symbols = [symbol for symbol in Market.objects.values_list("symbol", flat=True) if symbol not in enqueued]
    pipe = get_redis().pipeline(transaction=False)
    for symbol in symbols:
        pipe.exists(dirty_key(symbol))
    for symbol, dirty in zip(symbols, pipe.execute(), strict=True):
        if dirty:
            enqueue(symbol)
            enqueued.append(symbol)
    if behind:
        logger.info("trades without candles found by the sweep", extra={"markets": len(behind)})
    return enqueued


# --- pushing ------------------------------------------------------------------------------


def kline_event(*, symbol: str, candle: Kline, now: dt.datetime) -> dict:
    """The ``kline_<interval>@M`` payload (docs/realtime.md), Binance's field names."""
    return {
        "e": "kline",
        "E": to_millis(now),
        "s": symbol,
        "k": {
            "t": to_millis(candle.open_time),
            "T": to_millis(candle.close_time),
            "i": candle.interval,
            "o": plain(candle.open),
            "h": plain(candle.high),
            "l": plain(candle.low),
            "c": plain(candle.close),
            "v": plain(candle.volume),
            "q": plain(candle.quote_volume),
            "n": candle.trades,
            "x": candle.open_time + INTERVALS[candle.interval] <= now,
        },
    }


def publish_klines(*, symbol: str, candles: Sequence[Kline]) -> None:
    """Push each candle to its ``kline_<interval>@M`` group (after the aggregation committed)."""
    now = timezone.now()
    messages = []
    for candle in candles:
        kind = f"kline_{candle.interval}"
        stream = streams.public_stream(kind, symbol)
        text = streams.frame(stream, kline_event(symbol=symbol, candle=candle, now=now))
        messages.append((streams.public_group(kind, symbol), streams.group_message(stream, text)))
    broadcast.publish(messages)
