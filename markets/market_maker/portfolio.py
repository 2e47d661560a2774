"""Inventory and profit and loss, from balances alone.

Balances are the exchange's truth and include every fee, so PnL is simply
what the holdings are worth now minus what the holdings the bot started with
would be worth at today's prices (mark-to-market against doing nothing).
This also holds when the bot trades against itself, which a fill-by-fill
account can get wrong when one side of a self-trade is missed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal

from markets.market_maker.quoting import ZERO, MarketFilters


@dataclass
class Portfolio:
    """Totals (available + locked) per asset at the start, and now."""

    start: dict[str, Decimal] = field(default_factory=dict)
    now: dict[str, Decimal] = field(default_factory=dict)

    def update(self, totals: Mapping[str, Decimal]) -> None:
        """New totals for some assets; the first value seen of an asset becomes its starting point."""
        for asset, total in totals.items():
            self.start.setdefault(asset, total)
            self.now[asset] = total

    def position(self, asset: str) -> Decimal:
        """How much more of ``asset`` the bot holds than when it started (negative: less)."""
        return self.now.get(asset, ZERO) - self.start.get(asset, ZERO)

    def pnl(self, *, markets: Mapping[str, MarketFilters], prices: Mapping[str, Decimal]) -> dict[str, Decimal]:
        """PnL per quote asset: the change of the quote asset plus each base asset's change at its price.

        ``prices`` maps market symbols to reference prices.  A base asset
        traded in several markets of one quote asset is counted once, at the
        first such market's price.
        """
        result: dict[str, Decimal] = {}
        valued: set[tuple[str, str]] = set()
        for symbol in sorted(markets):
            market = markets[symbol]
            price = prices.get(symbol)
            if price is None:
                continue
            if market.quote not in result:
                result[market.quote] = self.position(market.quote)
            if (market.base, market.quote) not in valued:
                valued.add((market.base, market.quote))
                result[market.quote] += self.position(market.base) * price
        return result
