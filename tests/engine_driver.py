"""Run the real engine in-process, step by step, from a test."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

from django.db import connection
from django.db.models import Q

from markets.models import Market
from matching.engine import Engine, MarketEngine


class EngineDriver:
    """The engine of ``markets``, drained on demand.

    ``drain()`` reads the command streams (commands XADDed after a real commit)
    and then settles whatever the database says is owed (PENDING placements and
    requested cancels), which is how the engine recovers; tests running inside a
    rolled-back transaction never commit, so that second path is how their
    orders reach the engine.
    """

    def __init__(self, markets: Sequence[Market]) -> None:
        self.engine = Engine(markets, block_ms=1)
        self._started = False

    def start(self) -> None:
        if not self._started:
            self.engine.start()
            self._started = True

    def drain(self, rounds: int = 50) -> int:
        self.start()
        total = 0
        for _ in range(rounds):
            done = self.engine.resume_paused() if self.engine.paused else 0
            done += self.engine.read(pending=False)
            for market_engine in self.engine.markets.values():
                done += self.engine.settle_owed(market_engine, older_than=None)
            total += done
            if not done:
                return total
        raise AssertionError("the engine did not become idle")

    def market(self, symbol: str) -> MarketEngine:
        return self.engine.markets[symbol]


class EngineThread:
    """The real engine loop (``Engine.run``: start, steps, sweeps, retries) in a thread of this process.

    For tests that commit for real (``django_db(transaction=True)``) and want the
    engine running while other threads race it.  The thread has its own database
    connection, closed when it ends.

        with EngineThread([market]) as running:
            ...                                   # place, cancel, race
            running.wait_until(settled, timeout=10)
    """

    def __init__(self, markets: Sequence[Market], **options) -> None:
        self.engine = Engine(markets, **({"block_ms": 5} | options))
        self.stop = threading.Event()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            self.engine.run(self.stop)
        except BaseException as error:  # reported by wait_until and __exit__
            self.error = error
        finally:
            connection.close()

    def wait_until(self, condition, *, timeout: float, what: str = "the engine") -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if self.error is not None:
                raise AssertionError(f"the engine thread died: {self.error!r}")
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout} s waiting for {what}")
            time.sleep(0.02)

    def __enter__(self) -> EngineThread:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.thread.join(15)
        assert not self.thread.is_alive(), "the engine thread did not stop"
        if self.error is not None and exc[0] is None:
            raise AssertionError(f"the engine thread died: {self.error!r}")


def settled() -> bool:
    """True when the database owes the engine nothing: no order PENDING, no live order with a cancel request."""
    from orders.models import Order

    return not Order.objects.filter(
        Q(status=Order.Status.PENDING) | Q(status__in=Order.LIVE_STATUSES, cancel_requested_at__isnull=False)
    ).exists()
