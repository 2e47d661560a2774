"""Reads of the engine's state for operators: when each market last settled a batch, and what waits for it."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from redis.exceptions import ResponseError

from exchange_site.redis import get_redis
from markets.models import Market
from markets.selectors import market_list
from matching.engine import GROUP
from matching.models import EngineState
from orders.streams import stream_key

# Counting undelivered entries walks the stream on Redis < 7 (no ``lag`` field): stop here.
LAG_COUNT_LIMIT = 10_000


@dataclass(frozen=True, slots=True)
class MarketHealth:
    """One market as the engine sees it.

    ``lag`` is how many commands wait in the stream, not yet read by the engine
    (``None`` when unknown: no stream or no consumer group yet); ``pending`` how
    many it has read but not acknowledged (a batch in flight, or one a crash left
    to redeliver).  ``oldest_waiting`` is when the oldest unread command was written.
    """

    symbol: str
    status: str
    last_batch_at: dt.datetime | None
    batches: int
    commands: int
    stream_length: int | None
    lag: int | None
    lag_at_least: bool
    pending: int | None
    oldest_waiting: dt.datetime | None
    problem: str


def engine_health() -> list[MarketHealth]:
    """Every market's engine checkpoint (database) and command stream backlog (Redis ``XINFO``)."""
    markets = list(market_list())
    states = {state.market_id: state for state in EngineState.objects.filter(market__in=markets)}
    redis = get_redis()
    pipe = redis.pipeline(transaction=False)
    for market in markets:
        pipe.xlen(stream_key(market.symbol))
        pipe.xinfo_groups(stream_key(market.symbol))
    replies = pipe.execute(raise_on_error=False)
    health = []
    for index, market in enumerate(markets):
        length, groups = replies[2 * index], replies[2 * index + 1]
        state = states.get(market.pk)
        stream = _stream_health(redis, market, length, groups)
        health.append(
            MarketHealth(
                symbol=market.symbol,
                status=market.status,
                last_batch_at=state.last_batch_at if state else None,
                batches=state.batches if state else 0,
                commands=state.commands if state else 0,
                **stream,
            )
        )
    return health


def _stream_health(redis, market: Market, length: object, groups: object) -> dict[str, object]:
    unknown = {"lag": None, "lag_at_least": False, "pending": None, "oldest_waiting": None}
    if isinstance(groups, ResponseError) and "no such key" in str(groups).lower():
        return {"stream_length": None, **unknown, "problem": "no command stream yet (no order since Redis started)"}
    if isinstance(length, Exception) or isinstance(groups, Exception):
        return {"stream_length": None, **unknown, "problem": f"Redis: {groups}"}
    group = next((g for g in groups if _text(g.get("name")) == GROUP), None)
    if group is None:
        return {"stream_length": length, **unknown, "problem": "no engine consumer group: the engine has not started"}
    # Redis 7 reports the lag; 6.2 (the embedded server) does not: count what follows the last delivered id.
    lag = group.get("lag")
    following = redis.xrange(
        stream_key(market.symbol),
        min=f"({_text(group['last-delivered-id'])}",
        max="+",
        count=1 if lag is not None else LAG_COUNT_LIMIT,
    )
    at_least = False
    if lag is None:
        lag, at_least = len(following), len(following) >= LAG_COUNT_LIMIT
    oldest = None
    if following:
        milliseconds = int(_text(following[0][0]).split("-")[0])
        oldest = dt.datetime.fromtimestamp(milliseconds / 1000, tz=dt.UTC)
    return {
        "stream_length": length,
        "lag": lag,
        "lag_at_least": at_least,
        "pending": group["pending"],
        "oldest_waiting": oldest,
        "problem": "",
    }


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
