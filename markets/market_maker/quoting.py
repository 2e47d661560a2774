"""What the market maker wants on the book: a ladder of quotes, and how to get there from what is live.

Everything here is pure: decimals in, decimals out, no clock, no network.
Prices are rounded away from the reference (bids down, asks up) onto the
tick, quantities down onto the lot; every quote passes the market's filters
(tick, lot, minimum notional, maximum quantity) and the ladder never holds
more than the budget it is given.  Inventory skews the ladder: holding more
base than the target lowers both sides' prices and moves size from the bids
to the asks, so fills tend to bring the position back.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal
from typing import Any

BUY = "buy"
SELL = "sell"
BPS = Decimal(10_000)
ZERO = Decimal(0)
ONE = Decimal(1)


@dataclass(frozen=True, slots=True)
class MarketFilters:
    """One market as ``GET /api/v1/markets`` describes it: the rules every order must pass."""

    symbol: str
    base: str
    quote: str
    tick_size: Decimal
    lot_size: Decimal
    min_notional: Decimal
    max_quantity: Decimal
    trading: bool = True

    @classmethod
    def from_api(cls, data: Mapping[str, Any]) -> MarketFilters:
        return cls(
            symbol=data["symbol"],
            base=data["base"],
            quote=data["quote"],
            tick_size=Decimal(data["tick_size"]),
            lot_size=Decimal(data["lot_size"]),
            min_notional=Decimal(data["min_notional"]),
            max_quantity=Decimal(data["max_quantity"]),
            trading=data.get("status", "trading") == "trading",
        )

    def price_down(self, price: Decimal) -> Decimal:
        return (price / self.tick_size).to_integral_value(ROUND_FLOOR) * self.tick_size

    def price_up(self, price: Decimal) -> Decimal:
        return (price / self.tick_size).to_integral_value(ROUND_CEILING) * self.tick_size

    def quantity_down(self, quantity: Decimal) -> Decimal:
        return (quantity / self.lot_size).to_integral_value(ROUND_FLOOR) * self.lot_size

    def quantity_up(self, quantity: Decimal) -> Decimal:
        return (quantity / self.lot_size).to_integral_value(ROUND_CEILING) * self.lot_size

    @property
    def largest_quantity(self) -> Decimal:
        """The largest quantity on the lot that ``max_quantity`` allows."""
        return self.quantity_down(self.max_quantity)

    def smallest_quantity(self, price: Decimal) -> Decimal:
        """The smallest quantity on the lot whose value at ``price`` reaches the minimum notional."""
        return max(self.lot_size, self.quantity_up(self.min_notional / price))

    def sized(self, quantity: Decimal, price: Decimal) -> Decimal:
        """``quantity`` down on the lot, raised to the minimum notional at ``price``, capped at the maximum."""
        return min(max(self.quantity_down(quantity), self.smallest_quantity(price)), self.largest_quantity)

    def accepts(self, price: Decimal, quantity: Decimal) -> bool:
        """Whether a limit order at ``price`` for ``quantity`` passes every filter of this market."""
        return (
            price > 0
            and quantity > 0
            and price % self.tick_size == 0
            and quantity % self.lot_size == 0
            and quantity <= self.max_quantity
            and price * quantity >= self.min_notional
        )


@dataclass(frozen=True, slots=True)
class LadderParams:
    """The shape of the ladder (see ``config.MakerConfig`` for the settings behind each field)."""

    levels: int
    spread_bps: Decimal  # best ask - best bid, around the centre, at zero inventory
    level_step_bps: Decimal  # distance between consecutive levels of one side
    level_size_quote: Decimal  # value of one level at the reference price
    max_inventory_quote: Decimal  # inventory value at which the skew is full and the growing side stops
    skew_bps: Decimal  # how far the centre moves at full inventory
    size_skew: Decimal  # at full inventory, sizes on the growing side shrink by this fraction, the other grows


@dataclass(frozen=True, slots=True)
class Quote:
    side: str
    price: Decimal
    quantity: Decimal


@dataclass(frozen=True, slots=True)
class LiveOrder:
    """One of our resting orders: what is left of it on the book."""

    id: int
    side: str
    price: Decimal
    quantity: Decimal  # remaining, not original


@dataclass(frozen=True, slots=True)
class RequotePlan:
    keep: list[LiveOrder]
    cancel: list[LiveOrder]
    place: list[Quote]


def inventory_skew(*, position: Decimal, reference: Decimal, max_inventory_quote: Decimal) -> Decimal:
    """How far the position leans, in [-1, 1]: +1 is long by ``max_inventory_quote`` worth of base or more."""
    if max_inventory_quote <= 0:
        return ZERO
    return max(-ONE, min(ONE, position * reference / max_inventory_quote))


def ladder_prices(
    *, market: MarketFilters, centre: Decimal, params: LadderParams
) -> tuple[list[Decimal], list[Decimal]]:
    """Bid and ask prices, best first: on the tick, one tick apart at least, never crossed, bids above zero."""
    half = params.spread_bps / 2
    bids: list[Decimal] = []
    asks: list[Decimal] = []
    for level in range(params.levels):
        distance = (half + level * params.level_step_bps) / BPS
        bid = market.price_down(centre * (ONE - distance))
        ask = market.price_up(centre * (ONE + distance))
        # A step finer than the tick would stack two levels on one price: keep them a tick apart.
        if bids:
            bid = min(bid, bids[-1] - market.tick_size)
        if asks:
            ask = max(ask, asks[-1] + market.tick_size)
        elif bid > 0 and ask <= bid:
            ask = bid + market.tick_size  # a zero spread on a tick: never quote against ourselves
        if bid > 0:
            bids.append(bid)
        asks.append(ask)
    return bids, asks


def build_ladder(
    *,
    market: MarketFilters,
    reference: Decimal,
    skew: Decimal,
    base_budget: Decimal,
    quote_budget: Decimal,
    params: LadderParams,
) -> list[Quote]:
    """The quotes we want resting: bids (best first), then asks (best first).

    ``skew`` comes from ``inventory_skew``.  ``quote_budget`` bounds what the
    bids may lock (price x quantity), ``base_budget`` what the asks may lock;
    a level that does not fit is cut to what is left, and dropped with every
    level after it when the cut falls below the market's minimum.
    """
    if not market.trading or reference <= 0:
        return []
    skew = max(-ONE, min(ONE, skew))
    centre = reference * (ONE - skew * params.skew_bps / BPS)
    bid_prices, ask_prices = ladder_prices(market=market, centre=centre, params=params)
    base_size = params.level_size_quote / reference
    bid_factor = max(ZERO, ONE - skew * params.size_skew)
    ask_factor = max(ZERO, ONE + skew * params.size_skew)
    # At the inventory limit the side that would grow the position stops altogether.
    if skew >= ONE:
        bid_factor = ZERO
    if skew <= -ONE:
        ask_factor = ZERO
    bids = _side(market, BUY, bid_prices, base_size * bid_factor, quote_budget)
    asks = _side(market, SELL, ask_prices, base_size * ask_factor, base_budget)
    return bids + asks


def _side(market: MarketFilters, side: str, prices: Sequence[Decimal], size: Decimal, budget: Decimal) -> list[Quote]:
    if size <= 0:
        return []
    quotes: list[Quote] = []
    left = budget
    for price in prices:
        quantity = market.sized(size, price)
        cost = price * quantity if side == BUY else quantity
        if cost > left:
            quantity = market.quantity_down(left / price if side == BUY else left)
        if not market.accepts(price, quantity):
            break  # the budget is spent, or the filters cannot be met: no outer level without this one
        quotes.append(Quote(side, price, quantity))
        left -= price * quantity if side == BUY else quantity
    return quotes


def clear_of_book(quotes: Iterable[Quote], *, best_bid: Decimal | None, best_ask: Decimal | None) -> list[Quote]:
    """``quotes`` less those that would trade on arrival against the book (post-only would refuse them).

    Someone else may bid above our asks (or offer below our bids) after a
    jump of our reference price; those levels wait until the book or the
    price moves, instead of being sent and refused every cycle.
    """
    return [
        q
        for q in quotes
        if (q.side == BUY and (best_ask is None or q.price < best_ask))
        or (q.side == SELL and (best_bid is None or q.price > best_bid))
    ]


def plan_requote(
    *,
    live: Iterable[LiveOrder],
    desired: Iterable[Quote],
    price_tolerance_bps: Decimal,
    quantity_tolerance: Decimal,
) -> RequotePlan:
    """Which live orders to keep or cancel, and which quotes to place, to turn ``live`` into ``desired``.

    A live order stands for a desired quote of its side when its price is
    within ``price_tolerance_bps`` of the quote's and what is left of it is
    within ``quantity_tolerance`` (a fraction) of the quote's quantity; each
    live order stands for one quote at most, the nearest in price.  Unchanged
    levels are therefore left alone (no churn, they keep their time priority);
    a level that moved further is cancelled and placed anew.
    """
    live_by_side: dict[str, list[LiveOrder]] = {BUY: [], SELL: []}
    for order in sorted(live, key=lambda o: o.id):
        live_by_side[order.side].append(order)
    keep: list[LiveOrder] = []
    place: list[Quote] = []
    for quote in desired:
        candidates = live_by_side[quote.side]
        price_room = quote.price * price_tolerance_bps / BPS
        quantity_room = quote.quantity * quantity_tolerance
        best: LiveOrder | None = None
        for order in candidates:
            distance = abs(order.price - quote.price)
            if distance > price_room or abs(order.quantity - quote.quantity) > quantity_room:
                continue
            if best is None or distance < abs(best.price - quote.price):
                best = order
        if best is None:
            place.append(quote)
        else:
            candidates.remove(best)
            keep.append(best)
    cancel = sorted(live_by_side[BUY] + live_by_side[SELL], key=lambda o: o.id)
    return RequotePlan(keep=keep, cancel=cancel, place=place)


def take_side(*, draw: float, skew: Decimal) -> str:
    """Which side a liquidity-taking order goes: ``draw`` is uniform in [0, 1).

    Without inventory it is a coin toss; the longer the position, the likelier
    a sell (at +1 always a sell, at -1 always a buy), so taking also steers
    inventory home.
    """
    sell_probability = (ONE + max(-ONE, min(ONE, skew))) / 2
    return SELL if Decimal(draw) < sell_probability else BUY


def taker_quote(
    *, market: MarketFilters, side: str, price: Decimal, size_quote: Decimal, budget: Decimal
) -> Quote | None:
    """An order of about ``size_quote`` at ``price`` (the best opposite price) that passes the filters.

    ``budget`` is what it may lock (quote for a buy, base for a sell); None when nothing valid fits.
    """
    if not market.trading or price <= 0 or price % market.tick_size != 0:
        return None
    quantity = market.sized(size_quote / price, price)
    cost = price * quantity if side == BUY else quantity
    if cost > budget or not market.accepts(price, quantity):
        return None
    return Quote(side, price, quantity)


def locked_by(orders: Iterable[LiveOrder], side: str) -> Decimal:
    """What ``orders`` of ``side`` hold: quote for bids (price x remaining), base for asks."""
    if side == BUY:
        return sum((o.price * o.quantity for o in orders if o.side == BUY), ZERO)
    return sum((o.quantity for o in orders if o.side == SELL), ZERO)
