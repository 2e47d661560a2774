"""Reconnect delays: exponential, capped, with jitter.

When the exchange restarts, every client notices at the same moment; full
exponential delays with "equal jitter" (a random point in the upper half of
the current delay) spread their reconnects out while still growing, and keep
a lower bound so a client never hammers a server that is down.
"""

from __future__ import annotations

import random


class Backoff:
    def __init__(self, *, base: float, cap: float, factor: float = 2.0, rng: random.Random | None = None) -> None:
        if not 0 < base <= cap or factor < 1:
            raise ValueError("need 0 < base <= cap and factor >= 1")
        self.base, self.cap, self.factor = base, cap, factor
        self.rng = rng or random.Random()
        self.attempts = 0

    def ceiling(self, attempt: int) -> float:
        """The longest delay before retry number ``attempt`` (0-based): base x factor^attempt, at most cap."""
        # Past ~64 doublings the power overflows a float; the cap is reached long before.
        return min(self.cap, self.base * self.factor ** min(attempt, 64))

    def next_delay(self) -> float:
        """Seconds to wait before the next attempt: uniform in [ceiling / 2, ceiling]."""
        ceiling = self.ceiling(self.attempts)
        self.attempts += 1
        return self.rng.uniform(ceiling / 2, ceiling)

    def reset(self) -> None:
        """After a success: the next failure waits the shortest delay again."""
        self.attempts = 0
