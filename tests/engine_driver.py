"""Run the real engine in-process, step by step, from a test."""

from __future__ import annotations

from collections.abc import Sequence

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
            done = self.engine.read(pending=False)
            for market_engine in self.engine.markets.values():
                done += self.engine.settle_owed(market_engine, older_than=None)
            total += done
            if not done:
                return total
        raise AssertionError("the engine did not become idle")

    def market(self, symbol: str) -> MarketEngine:
        return self.engine.markets[symbol]
