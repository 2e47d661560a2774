"""Reads the Binance adapter needs beyond the other apps' selectors."""

from __future__ import annotations

import re

from exchange_site.redis import get_redis

LISTEN_KEY = re.compile(r"[0-9a-f]{60}")


def listen_key_name(listen_key: str) -> str:
    """The Redis key holding a listen key's owner (``compat.services`` writes it, with a 60-minute expiry)."""
    return f"compat:listen:{listen_key}"


def listen_key_user_id(listen_key: str) -> int | None:
    """Whose events ``listen_key`` names, or None when it does not exist (any more)."""
    if not LISTEN_KEY.fullmatch(listen_key):
        return None
    owner = get_redis().get(listen_key_name(listen_key))
    return int(owner) if owner is not None else None
