"""Constants and events of the matching core: what goes into ``OrderBook.place`` and what comes out.

Everything here is a plain int, str or ``NamedTuple``: the book emits a few
events per order on its hot path, and a tuple is the cheapest object Python
can build that still reads well at the call site (``fill.price``).

The module imports nothing outside the standard library, so the book can be
run, tested and benchmarked without Django (see ``test_book_boundary``).
"""

from __future__ import annotations

from typing import NamedTuple

# Sides.  Ints (not strings) because the book indexes its two halves with them.
BUY = 0
SELL = 1

# Order kinds.
LIMIT = 0
MARKET = 1

# Time in force.  GTC rests what is left; IOC drops it; FOK fills all or nothing.
GTC = 0
IOC = 1
FOK = 2

# Self-trade prevention, chosen by the taker.
STP_NONE = 0
STP_EXPIRE_TAKER = 1
STP_EXPIRE_MAKER = 2
STP_EXPIRE_BOTH = 3

# Terminal statuses carried by ``Done``.  Strings so a log line or a test
# failure reads without a lookup table.
FILLED = "filled"
CANCELLED = "cancelled"
EXPIRED = "expired"
REJECTED = "rejected"


class Fill(NamedTuple):
    """One trade between the incoming order (taker) and a resting one (maker), at the maker's price."""

    taker_id: int
    maker_id: int
    taker_user: int
    maker_user: int
    price: int  # ticks
    qty: int  # lots
    taker_side: int  # BUY or SELL; the maker is on the other side


class Rested(NamedTuple):
    """The taker's unfilled rest was put on the book; ``qty`` is that rest, not the original quantity."""

    order_id: int
    side: int
    price: int
    qty: int


class Done(NamedTuple):
    """An order left the book, or ended without ever resting; ``status`` is one of the terminal statuses."""

    order_id: int
    status: str


Event = Fill | Rested | Done

__all__ = [
    "BUY",
    "CANCELLED",
    "EXPIRED",
    "FILLED",
    "FOK",
    "GTC",
    "IOC",
    "LIMIT",
    "MARKET",
    "REJECTED",
    "SELL",
    "STP_EXPIRE_BOTH",
    "STP_EXPIRE_MAKER",
    "STP_EXPIRE_TAKER",
    "STP_NONE",
    "Done",
    "Event",
    "Fill",
    "Rested",
]
