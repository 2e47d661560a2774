"""The one boundary between decimal amounts (API, database) and the engine's integers.

Price in ticks, quantity in lots.  A value that is not a whole number of
ticks or lots is refused by order entry before it gets here; these functions
check it again (a ValueError, not an ``assert``, which ``python -O`` would
strip into silent truncation), they never round.
"""

from __future__ import annotations

from decimal import Decimal

from markets.models import Market


def is_multiple(value: Decimal, step: Decimal) -> bool:
    return value % step == 0


def to_ticks(market: Market, price: Decimal) -> int:
    ticks, rest = divmod(price, market.tick_size)
    if rest:
        raise ValueError(f"{price} is not on the tick {market.tick_size} of {market.symbol}")
    return int(ticks)


def to_lots(market: Market, quantity: Decimal) -> int:
    lots, rest = divmod(quantity, market.lot_size)
    if rest:
        raise ValueError(f"{quantity} is not on the lot {market.lot_size} of {market.symbol}")
    return int(lots)


def notional_units(market: Market, quote_amount: Decimal) -> int:
    """How many whole (tick x lot) units ``quote_amount`` buys: the engine's quote budget."""
    return int(quote_amount // (market.tick_size * market.lot_size))


def from_ticks(market: Market, ticks: int) -> Decimal:
    return ticks * market.tick_size


def from_lots(market: Market, lots: int) -> Decimal:
    return lots * market.lot_size
