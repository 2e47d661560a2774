"""Writes to markets: creation with its filters checked, halt and resume."""

from __future__ import annotations

from decimal import Decimal

from django.db import transaction

from accounts.models import Asset
from exchange_site.amounts import decimal_places, plain
from exchange_site.errors import ApplicationError
from markets.models import Market
from markets.selectors import forget_cached_markets


def market_create(
    *,
    base: Asset,
    quote: Asset,
    tick_size: Decimal,
    lot_size: Decimal,
    min_notional: Decimal = Decimal(0),
    maker_fee_rate: Decimal = Decimal("0.001"),
    taker_fee_rate: Decimal = Decimal("0.001"),
) -> Market:
    """Create ``BASE_QUOTE``.

    The engine settles in exact amounts only if a lot is countable in the base
    asset and a tick times a lot in the quote asset; a market that broke this
    would have to round trades, so it is refused here.
    """
    symbol = f"{base.symbol}_{quote.symbol}"
    if base.pk == quote.pk:
        raise ApplicationError("A market trades two different assets.", code="invalid_market_assets")
    if Market.objects.filter(symbol=symbol).exists():
        raise ApplicationError(f"Market {symbol} already exists.", code="market_exists", details={"market": symbol})
    validate_filters(base=base, quote=quote, tick_size=tick_size, lot_size=lot_size)
    with transaction.atomic(durable=True):
        return Market.objects.create(
            symbol=symbol,
            base=base,
            quote=quote,
            tick_size=tick_size,
            lot_size=lot_size,
            min_notional=min_notional,
            maker_fee_rate=maker_fee_rate,
            taker_fee_rate=taker_fee_rate,
        )


def validate_filters(*, base: Asset, quote: Asset, tick_size: Decimal, lot_size: Decimal) -> None:
    if tick_size <= 0 or lot_size <= 0:
        raise ApplicationError("Tick size and lot size must be positive.", code="invalid_market_filters")
    if decimal_places(lot_size) > base.precision:
        raise ApplicationError(
            f"Lot size {plain(lot_size)} has more decimals than {base.symbol} ({base.precision}).",
            code="invalid_market_filters",
        )
    if decimal_places(tick_size * lot_size) > quote.precision:
        raise ApplicationError(
            f"Tick x lot ({plain(tick_size * lot_size)}) has more decimals than {quote.symbol} ({quote.precision}).",
            code="invalid_market_filters",
        )


def market_set_status(*, market: Market, status: str) -> Market:
    """Halt or resume a market.  A halted market refuses new orders; cancels still work."""
    if status not in Market.Status.values:
        raise ApplicationError(f"Unknown market status {status!r}.", code="invalid_market_status")
    with transaction.atomic(durable=True):
        Market.objects.filter(pk=market.pk).update(status=status)
    forget_cached_markets()
    market.status = status
    return market
