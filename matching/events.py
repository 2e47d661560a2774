"""Constants and events of the matching core: what goes into ``OrderBook.place`` and what comes out.

Everything here is a plain int, str or tuple.  The book emits one to a few
events per order on its hot path, so an event is a plain *tagged tuple*: the
cheapest object CPython can build (a ``NamedTuple`` costs about 100 ns more
per event, which was most of the book's gap to the benchmark's reference).
Element 0 is the tag; read the others by position, with the index constants
below where it helps the reader.

=========  ===============================================================================
tag        layout
=========  ===============================================================================
``FILL``   ``(FILL, taker_id, maker_id, taker_user, maker_user, price, qty, taker_side,
           maker_left)``: one trade between the incoming order (taker) and a resting
           one (maker), at the maker's ``price`` (ticks), for ``qty`` lots.
           ``taker_side`` is BUY or SELL (the maker is on the other side).
           ``maker_left`` is the maker's remaining lots after this fill; 0 means
           the maker left the book FILLED (there is no separate ``DONE`` for it).
``RESTED`` ``(RESTED, order_id, side, price, qty)``: the taker's unfilled rest was put
           on the book; ``qty`` is that rest, not the original quantity.
``DONE``   ``(DONE, order_id, status)``: an order ended.  Either the taker (FILLED,
           EXPIRED or REJECTED), a maker removed by self-trade prevention
           (EXPIRED), or a cancelled order (CANCELLED).
=========  ===============================================================================

``describe`` turns an event into a dict with field names, for tests, logs and
debugging; it is not meant for the hot path.

The module imports nothing outside the standard library, so the book can be
run, tested and benchmarked without Django (see ``test_book_boundary``).
"""

from __future__ import annotations

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

# Terminal statuses carried by ``DONE`` events.  Strings so a log line or a
# test failure reads without a lookup table.
FILLED = "filled"
CANCELLED = "cancelled"
EXPIRED = "expired"
REJECTED = "rejected"

# Event tags: element 0 of every event.
FILL = 0
RESTED = 1
DONE = 2

# Positions in a FILL event.
F_TAKER = 1
F_MAKER = 2
F_TAKER_USER = 3
F_MAKER_USER = 4
F_PRICE = 5
F_QTY = 6
F_TAKER_SIDE = 7
F_MAKER_LEFT = 8

# Positions in a RESTED event.
R_ORDER = 1
R_SIDE = 2
R_PRICE = 3
R_QTY = 4

# Positions in a DONE event.
D_ORDER = 1
D_STATUS = 2

# Field names of each event kind, in tuple order after the tag.
FIELDS: dict[int, tuple[str, ...]] = {
    FILL: ("taker_id", "maker_id", "taker_user", "maker_user", "price", "qty", "taker_side", "maker_left"),
    RESTED: ("order_id", "side", "price", "qty"),
    DONE: ("order_id", "status"),
}
_KIND_NAMES = {FILL: "fill", RESTED: "rested", DONE: "done"}

Event = tuple


def describe(event: tuple) -> dict:
    """``event`` as a dict: ``{"event": "fill" | "rested" | "done", <field>: <value>, ...}``.

    Raises ValueError for a tuple that is not a well-formed event.
    """
    tag = event[0] if event else None
    names = FIELDS.get(tag) if type(tag) is int else None
    if names is None or len(event) != len(names) + 1:
        raise ValueError(f"not a matching event: {event!r}")
    return {"event": _KIND_NAMES[tag], **dict(zip(names, event[1:], strict=True))}


__all__ = [
    "BUY",
    "CANCELLED",
    "DONE",
    "D_ORDER",
    "D_STATUS",
    "EXPIRED",
    "FIELDS",
    "FILL",
    "FILLED",
    "FOK",
    "F_MAKER",
    "F_MAKER_LEFT",
    "F_MAKER_USER",
    "F_PRICE",
    "F_QTY",
    "F_TAKER",
    "F_TAKER_SIDE",
    "F_TAKER_USER",
    "GTC",
    "IOC",
    "LIMIT",
    "MARKET",
    "REJECTED",
    "RESTED",
    "R_ORDER",
    "R_PRICE",
    "R_QTY",
    "R_SIDE",
    "SELL",
    "STP_EXPIRE_BOTH",
    "STP_EXPIRE_MAKER",
    "STP_EXPIRE_TAKER",
    "STP_NONE",
    "Event",
    "describe",
]
