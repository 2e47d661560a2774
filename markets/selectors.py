"""Reads of markets.  Markets change rarely and are read on every order, so they are cached."""

from __future__ import annotations

from django.db.models import QuerySet

from exchange_site.errors import ApplicationError
from exchange_site.local_cache import MISSING, TTLCache
from markets.models import Market


def market_list() -> QuerySet[Market]:
    return Market.objects.select_related("base", "quote").order_by("symbol")


# Read on every order.  A change made here (halt, resume) is seen at once by this
# process and within a second by the others.
MARKET_CACHE_SECONDS = 1.0
_cached_markets = TTLCache(MARKET_CACHE_SECONDS)


def market_get(*, symbol: str) -> Market:
    """The market named ``symbol`` (any case), with its assets, or ``unknown_market``."""
    key = symbol.upper()
    market = _cached_markets.get(key)
    if market is MISSING:
        market = market_list().filter(symbol=key).first()
        _cached_markets.set(key, market)
    if market is None:
        raise ApplicationError(
            f"There is no market {symbol!r}. See GET /api/v1/markets for the list.",
            code="unknown_market",
            details={"market": symbol},
            status=404,
        )
    return market


def market_get_by_id(*, market_id: int) -> Market:
    """The market with primary key ``market_id`` (it exists: an order points at it), cached like ``market_get``."""
    key = ("id", market_id)
    market = _cached_markets.get(key)
    if market is MISSING:
        market = market_list().get(pk=market_id)
        _cached_markets.set(key, market)
    return market


def forget_cached_markets() -> None:
    """Drop this process's cached markets (after a change to one)."""
    _cached_markets.clear()
