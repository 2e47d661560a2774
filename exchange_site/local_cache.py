"""A tiny in-process cache with a time to live, for hot reads that may be a little stale.

Each web worker keeps its own; entries expire after ``ttl`` seconds, and the
code that changes the underlying rows discards its own process's entry at
once.  Use it only where the staleness window is stated (markets: one second;
API keys: revocation is also checked in Redis on every request).
"""

from __future__ import annotations

import time
from typing import Any

MISSING = object()


class TTLCache:
    def __init__(self, ttl: float, *, maxsize: int = 10_000) -> None:
        self.ttl = ttl
        self.maxsize = maxsize
        self._entries: dict[Any, tuple[float, Any]] = {}

    def get(self, key: Any) -> Any:
        """The cached value, or ``MISSING`` when absent or expired."""
        entry = self._entries.get(key)
        if entry is None or entry[0] < time.monotonic():
            return MISSING
        return entry[1]

    def set(self, key: Any, value: Any) -> None:
        if len(self._entries) >= self.maxsize:
            self._entries.clear()  # crude, but bounded; a full cache is refilled in one TTL
        self._entries[key] = (time.monotonic() + self.ttl, value)

    def discard(self, key: Any) -> None:
        self._entries.pop(key, None)

    def clear(self) -> None:
        self._entries.clear()
