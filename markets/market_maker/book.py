"""A local copy of one market's book, kept as docs/realtime.md ("Keeping a local order book") says.

Updates that arrive before the REST snapshot are buffered; the snapshot's
``lastUpdateId`` decides which of them still apply; any gap in the update ids
(a missed message, a reconnect) marks the book stale until the next snapshot.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any

# Updates kept while waiting for a snapshot: a snapshot that is this far behind is refetched anyway.
MAX_BUFFERED = 1000


class LocalBook:
    def __init__(self) -> None:
        self.bids: dict[Decimal, Decimal] = {}
        self.asks: dict[Decimal, Decimal] = {}
        self.last_update_id: int | None = None  # None: no valid snapshot applied (stale)
        self._buffer: list[Mapping[str, Any]] = []

    @property
    def synced(self) -> bool:
        return self.last_update_id is not None

    def best_bid(self) -> Decimal | None:
        return max(self.bids) if self.synced and self.bids else None

    def best_ask(self) -> Decimal | None:
        return min(self.asks) if self.synced and self.asks else None

    def invalidate(self) -> None:
        """Forget the book (the connection dropped): updates are buffered again until a snapshot."""
        self.bids.clear()
        self.asks.clear()
        self.last_update_id = None
        self._buffer.clear()

    def on_update(self, update: Mapping[str, Any]) -> None:
        """Apply one ``depthUpdate`` (``U``, ``u``, ``b``, ``a``), or buffer it while there is no snapshot."""
        if self.last_update_id is None:
            self._buffer.append(update)
            del self._buffer[:-MAX_BUFFERED]
            return
        if update["u"] <= self.last_update_id:
            return  # already in the snapshot
        if update["U"] != self.last_update_id + 1:
            self.invalidate()  # a gap: start again from a snapshot
            self._buffer.append(update)
            return
        self._apply(update)

    def load_snapshot(self, snapshot: Mapping[str, Any]) -> bool:
        """Take a REST depth snapshot and the buffered updates after it; False when they do not join up."""
        last = int(snapshot["lastUpdateId"])
        pending = [u for u in self._buffer if u["u"] > last]
        if pending and not pending[0]["U"] <= last + 1 <= pending[0]["u"]:
            return False  # the snapshot is older than the first update kept: fetch another
        self.bids = _levels(snapshot["bids"])
        self.asks = _levels(snapshot["asks"])
        self.last_update_id = last
        self._buffer.clear()
        for update in pending:
            if update["U"] > self.last_update_id + 1:
                self.invalidate()
                return False
            self._apply(update)
        return True

    def _apply(self, update: Mapping[str, Any]) -> None:
        for side, changes in ((self.bids, update.get("b", ())), (self.asks, update.get("a", ()))):
            for price, quantity in changes:
                price, quantity = Decimal(price), Decimal(quantity)
                if quantity == 0:
                    side.pop(price, None)
                else:
                    side[price] = quantity
        self.last_update_id = update["u"]


def _levels(pairs: Iterable[Iterable[str]]) -> dict[Decimal, Decimal]:
    return {Decimal(price): Decimal(quantity) for price, quantity in pairs}
