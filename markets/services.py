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
    max_notional: Decimal | None = None,
) -> Market:
    """Create ``BASE_QUOTE``.

    The engine settles in exact amounts only if a lot is countable in the base
    asset and a tick times a lot in the quote asset; a market that broke this
    would have to round trades, so it is refused here (docs/decisions/010).
    """
    symbol = f"{base.symbol}_{quote.symbol}"
    if base.pk == quote.pk:
        raise ApplicationError("A market trades two different assets.", code="invalid_market_assets")
    if Market.objects.filter(symbol=symbol).exists():
        raise ApplicationError(f"Market {symbol} already exists.", code="market_exists", details={"market": symbol})
    validate_filters(base=base, quote=quote, tick_size=tick_size, lot_size=lot_size)
    if max_notional is not None and max_notional <= max(min_notional, Decimal(0)):
        raise ApplicationError(
            f"Maximum order value {plain(max_notional)} must be above the minimum {plain(min_notional)}.",
            code="invalid_market_filters",
        )
    with transaction.atomic(durable=True):
        return Market.objects.create(
            symbol=symbol,
            base=base,
            quote=quote,
            tick_size=tick_size,
            lot_size=lot_size,
            min_notional=min_notional,
            max_notional=max_notional,
            maker_fee_rate=maker_fee_rate,
            taker_fee_rate=taker_fee_rate,
        )


def validate_filters(*, base: Asset, quote: Asset, tick_size: Decimal, lot_size: Decimal) -> None:
    """Refuse filters under which some amount could not be written exactly at its asset's precision.

    Every quantity is a whole number of lots, so it is exact in the base asset iff
    the lot is; every notional (price x quantity, and so every lock of a buy and
    every trade's quote amount) is a whole number of tick x lot units, so it is
    exact in the quote asset iff tick x lot is.  That is the exact condition; the
    coarser ``decimals(lot) + decimals(tick) <= quote precision`` implies it.
    Fees are then rounded down to the asset's precision and the remainder stays
    with the receiver, so no amount finer than an asset's unit ever exists.
    """
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
    """Set a market trading, cancel-only or halted.

    Cancel-only refuses new orders and serves cancels.  Halted refuses new
    orders and pauses the market's engine: commands already queued (placements
    accepted before the halt, cancels sent since) wait in its stream and are
    processed, each once, after the market is resumed (docs/decisions/010).
    """
    if status not in Market.Status.values:
        raise ApplicationError(f"Unknown market status {status!r}.", code="invalid_market_status")
    with transaction.atomic(durable=True):
        Market.objects.filter(pk=market.pk).update(status=status)
    forget_cached_markets()
    market.status = status
    return market
