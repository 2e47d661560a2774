"""Amounts and market-data times in templates: plain decimals as the API writes them (never through float)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from django import template

from exchange_site.amounts import plain as plain_amount

register = template.Library()


@register.filter
def plain(value: Decimal | int | None) -> str:
    """1.50000000 -> "1.5"; None -> "" (a market order has no price)."""
    return "" if value is None else plain_amount(value)


@register.filter
def percent(rate: Decimal | None) -> str:
    """A fee rate as a percentage: 0.001 -> "0.1%"."""
    return "" if rate is None else f"{plain_amount(rate * 100)}%"


@register.filter
def plus(value: Decimal, other: Decimal) -> Decimal:
    """Exact sum of two amounts (Django's ``add`` filter goes through int)."""
    return value + other


@register.filter
def from_ms(value: int | None) -> dt.datetime | None:
    """Milliseconds since the epoch (market data's times) as an aware datetime, for ``|date``."""
    return None if value is None else dt.datetime.fromtimestamp(value / 1000, tz=dt.UTC)
