"""Health checks behind ``/healthz`` (liveness) and ``/readyz`` (readiness).

Liveness needs nothing: a process that answers is alive, and restarting it
because the database is down would not bring the database back.  Readiness
asks what order entry needs: PostgreSQL, Redis, and a running engine for every
trading market (an order accepted while its engine is down waits, PENDING,
until the engine returns).

The engine heartbeat is a contract with ``matching.engine``: the Redis hash
``engine:heartbeat`` has one field per market symbol whose value is the
engine's clock in milliseconds since the epoch, refreshed at least every 2 s
while it runs.  A trading market whose field is missing or older than
``settings.HEALTH_ENGINE_STALE_S`` has no engine.

Each check returns a ``Check`` and never raises for the failure it checks:
the caller turns the results into one answer.  Error details go to the log,
not into the response, which load balancers (and so anyone) can read.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import redis as redis_lib
from django.conf import settings
from django.db import DatabaseError
from django.db import connection as default_connection
from django.db.backends.base.base import BaseDatabaseWrapper

from markets.models import Market
from matching.engine import HEARTBEAT_KEY

logger = logging.getLogger(__name__)

# A probe must answer within the prober's timeout even when a server hangs.
REDIS_TIMEOUT_S = 2.0


@dataclass(frozen=True)
class Check:
    """One check's outcome: ``details`` says what was measured, ``message`` what to do when it failed."""

    name: str
    ok: bool
    details: dict[str, Any] = field(default_factory=dict)
    message: str = ""

    def as_dict(self) -> dict[str, Any]:
        body: dict[str, Any] = {"ok": self.ok, **self.details}
        if self.message:
            body["message"] = self.message
        return body


@dataclass(frozen=True)
class Readiness:
    checks: tuple[Check, ...]

    @property
    def ok(self) -> bool:
        return all(check.ok for check in self.checks)

    def as_dict(self) -> dict[str, Any]:
        failing = [check for check in self.checks if not check.ok]
        body: dict[str, Any] = {
            "status": "ready" if not failing else "not_ready",
            "checks": {check.name: check.as_dict() for check in self.checks},
        }
        if failing:
            body["failing"] = [check.name for check in failing]
            body["message"] = " ".join(check.message for check in failing)
        return body


@functools.cache
def health_redis(url: str) -> redis_lib.Redis:
    """A client with timeouts, unlike the shared one: a hung Redis must fail the probe, not hang it."""
    return redis_lib.Redis.from_url(url, socket_timeout=REDIS_TIMEOUT_S, socket_connect_timeout=REDIS_TIMEOUT_S)


def _timed(call: Callable[[], object]) -> float:
    started = time.perf_counter()
    call()
    return round((time.perf_counter() - started) * 1000, 2)


def check_database(*, connection: BaseDatabaseWrapper | None = None) -> Check:
    """PostgreSQL answers ``SELECT 1``."""
    connection = connection or default_connection

    def select_one() -> None:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()

    try:
        return Check("database", True, {"latency_ms": _timed(select_one)})
    except DatabaseError as error:
        logger.warning("readiness: database unavailable", extra={"error": str(error)})
        return Check(
            "database",
            False,
            {"error": type(error).__name__},
            "PostgreSQL did not answer: check that it runs and that DATABASE_URL points at it (web log has the error).",
        )


def check_redis(*, client: redis_lib.Redis | None = None) -> Check:
    """Redis answers ``PING``."""
    client = client or health_redis(settings.REDIS_URL)
    try:
        return Check("redis", True, {"latency_ms": _timed(client.ping)})
    except (redis_lib.RedisError, OSError) as error:
        logger.warning("readiness: redis unavailable", extra={"error": str(error)})
        return Check(
            "redis",
            False,
            {"error": type(error).__name__},
            "Redis did not answer PING: check that it runs and that REDIS_URL points at it (web log has the error).",
        )


def check_engines(
    *,
    client: redis_lib.Redis | None = None,
    now_ms: int | None = None,
    stale_after_s: float | None = None,
) -> Check:
    """Every market that is not halted (trading or cancel-only) has a fresh engine heartbeat.

    A heartbeat from further in the future than the limit is a clock out of
    step between the engine's host and this one, and would hide a dead engine
    until the clocks meet: it fails too.
    """
    client = client or health_redis(settings.REDIS_URL)
    limit_s = settings.HEALTH_ENGINE_STALE_S if stale_after_s is None else stale_after_s
    limit_ms = limit_s * 1000
    try:
        # A cancel-only market still needs its engine (it serves cancels); a halted one is paused.
        symbols = list(Market.objects.exclude(status=Market.Status.HALTED).values_list("symbol", flat=True))
        beats = {key.decode(): value for key, value in client.hgetall(HEARTBEAT_KEY).items()}
    except (DatabaseError, redis_lib.RedisError, OSError) as error:
        logger.warning("readiness: engine heartbeats unreadable", extra={"error": str(error)})
        return Check(
            "engines",
            False,
            {"error": type(error).__name__},
            "Engine heartbeats could not be read: fix the database or Redis check first.",
        )
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    markets: dict[str, dict[str, Any]] = {}
    down: list[str] = []
    for symbol in symbols:
        raw = beats.get(symbol)
        try:
            age_ms = now_ms - int(raw) if raw is not None else None
        except ValueError:
            age_ms = None
        if age_ms is None:
            markets[symbol] = {"state": "missing"}
        elif age_ms > limit_ms:
            markets[symbol] = {"state": "stale", "age_ms": age_ms}
        elif age_ms < -limit_ms:
            markets[symbol] = {"state": "clock_skew", "age_ms": age_ms}
        else:
            markets[symbol] = {"state": "running", "age_ms": max(age_ms, 0)}
        if markets[symbol]["state"] != "running":
            down.append(symbol)
    details = {"stale_after_s": limit_s, "markets": markets}
    if not down:
        return Check("engines", True, details)
    why = ", ".join(f"{symbol} ({_describe(markets[symbol])})" for symbol in down)
    return Check(
        "engines",
        False,
        details,
        f"Engine down for {why}: start or restart `manage.py run_engine --markets {','.join(down)}` "
        "and read its log for why it stopped; orders in those markets wait as pending until it runs.",
    )


def _describe(market: dict[str, Any]) -> str:
    if market["state"] == "missing":
        return "no heartbeat"
    if market["state"] == "clock_skew":
        return f"heartbeat {-market['age_ms'] / 1000:.1f} s in the future: sync the clocks"
    return f"last heartbeat {market['age_ms'] / 1000:.1f} s ago"


def readiness() -> Readiness:
    """Run every check; each is independent, so one failure does not hide another."""
    return Readiness((check_database(), check_redis(), check_engines()))
