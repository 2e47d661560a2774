"""Waiting (briefly) for the engine's verdict, so RESULT/FULL responses and cancels report real states.

Binance matches inside the request: the response to ``POST /api/v3/order``
says FILLED, EXPIRED or NEW with its fills.  Our web tier only holds the
funds and queues the order; the engine matches it a few milliseconds later.
So for ``newOrderRespType`` RESULT or FULL (and for cancels, which Binance
also answers with the final ``CANCELED``) the request subscribes to the
owner's private events *before* acting, then waits until the engine has
published the order's new state, at most ``BINANCE_RESULT_WAIT_S`` (1 s by
default), and answers from the order's row as it stands then.  When the
engine is slow or down, the answer is the current state (``NEW``), as for
``ACK``: never an error, never a guess.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable

from django.conf import settings

from marketdata import streams
from marketdata.broadcast import GroupSubscription
from orders.models import Order


def wait_seconds() -> float:
    return settings.EXCHANGE["BINANCE_RESULT_WAIT_S"]


def subscribe(user_id: int) -> GroupSubscription:
    """Start listening to ``user_id``'s events; call before placing or cancelling."""
    return GroupSubscription(streams.user_group(user_id))


def wait_for_orders(
    events: GroupSubscription, order_ids: Iterable[int], *, done: Callable[[str], bool], timeout: float
) -> set[int]:
    """Read ``events`` until each order's published status satisfies ``done``; returns the ids still waited for."""
    waiting = set(order_ids)
    deadline = time.monotonic() + timeout
    while waiting and (left := deadline - time.monotonic()) > 0:
        frame = events.next_frame(left)
        if frame is None or frame[0] != "orders":
            continue
        data = json.loads(frame[1])["data"]
        if data["id"] in waiting and done(data["status"]):
            waiting.discard(data["id"])
    return waiting


def processed(status: str) -> bool:
    """The engine has taken the order in (any published state is past PENDING)."""
    return status != Order.Status.PENDING


def ended(status: str) -> bool:
    return status in Order.TERMINAL_STATUSES
