"""Reads of market data kept in Redis by the engine (rebuildable read models)."""

from __future__ import annotations

from decimal import Decimal

from exchange_site.redis import get_redis


def reference_key(symbol: str) -> str:
    return f"md:{{{symbol}}}:reference"


def reference_prices(*, symbol: str) -> dict[str, Decimal]:
    """Best bid, best ask and last trade price of ``symbol`` as the engine last committed them."""
    raw = get_redis().hgetall(reference_key(symbol))
    return {key.decode(): Decimal(value.decode()) for key, value in raw.items() if value}
