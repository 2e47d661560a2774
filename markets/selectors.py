"""Reads of markets.  Markets change rarely and are read on every order, so they are cached."""

from __future__ import annotations

from django.db.models import QuerySet

from exchange_site.errors import ApplicationError
from markets.models import Market


def market_list() -> QuerySet[Market]:
    return Market.objects.select_related("base", "quote").order_by("symbol")


def market_get(*, symbol: str) -> Market:
    """The market named ``symbol`` (any case), or ``unknown_market``."""
    try:
        return market_list().get(symbol=symbol.upper())
    except Market.DoesNotExist:
        raise ApplicationError(
            f"There is no market {symbol!r}. See GET /api/v1/markets for the list.",
            code="unknown_market",
            details={"market": symbol},
            status=404,
        ) from None
