"""Stream names, their Channels groups and their frames: one definition for publishers and consumers.

A WebSocket client subscribes to streams named as Binance names them
(``depth@BTC_USDT``); Channels groups only allow ``[a-zA-Z0-9._-]``, so each
stream maps to a group (``md.depth.BTC_USDT``).  Publishers build the frame's
JSON text once (``frame``), and every consumer in the group sends that text
as is: serializing once per message instead of once per client is what lets
one daphne process feed many clients.
"""

from __future__ import annotations

import json
import re
import time
from typing import Any

KLINE_INTERVALS = ("1m", "5m", "15m", "1h", "4h", "1d", "1w")
PUBLIC_KINDS = ("depth", "trades", "ticker", *(f"kline_{interval}" for interval in KLINE_INTERVALS))
PRIVATE_STREAMS = ("orders", "fills", "balances")
# Channels' consumer method that receives a group message of this type.
MESSAGE_TYPE = "stream.message"

_PUBLIC = re.compile(r"^(?P<kind>[a-z0-9_]+)@(?P<symbol>[A-Z0-9]{1,16}_[A-Z0-9]{1,16})$")


def public_stream(kind: str, symbol: str) -> str:
    return f"{kind}@{symbol}"


def parse_public_stream(name: str) -> tuple[str, str] | None:
    """``(kind, symbol)`` of a well-formed public stream name, else None (the market may still not exist)."""
    match = _PUBLIC.match(name)
    if match is None or match["kind"] not in PUBLIC_KINDS:
        return None
    return match["kind"], match["symbol"]


def public_group(kind: str, symbol: str) -> str:
    return f"md.{kind}.{symbol}"


def user_group(user_id: int) -> str:
    """Every private event of one user goes to this group; consumers filter by the streams subscribed."""
    return f"user.{user_id}"


def frame(stream: str, data: Any) -> str:
    """The JSON text a client receives: ``{"stream": ..., "data": ...}``."""
    return json.dumps({"stream": stream, "data": data}, separators=(",", ":"))


def group_message(stream: str, text: str) -> dict[str, Any]:
    """The Channels message carrying one pre-serialized frame to a group.

    ``at`` (seconds since the epoch, when it was published) lets a consumer see
    how far behind its client is and drop one that cannot keep up.
    """
    return {"type": MESSAGE_TYPE, "stream": stream, "text": text, "at": time.time()}
