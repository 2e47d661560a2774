"""Where the market maker's reference price comes from: a bounded random walk, or a price file.

Both work in ``Decimal``: the random numbers only pick whole steps, so no
float ever becomes a price.
"""

from __future__ import annotations

import logging
import os
import random
from collections.abc import Callable
from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_EVEN, Decimal, InvalidOperation
from pathlib import Path

from markets.market_maker.quoting import BPS, ONE

logger = logging.getLogger(__name__)

# A step is a whole number of these fractions of ``step_bps`` in either direction.
STEP_GRAIN = 1000


class RandomWalk:
    """A reference price that wanders by up to ``step_bps`` per step inside a band around ``centre``.

    The band is ``centre x (1 +/- band_pct / 100)``; a step that would leave
    it is reflected back in, so the price never leaves it and does not stick
    to its edges.  Prices are kept on ``quantum`` (the market's tick), so the
    walk itself never produces more digits than the market can quote.  The
    same seed gives the same path.
    """

    def __init__(
        self,
        *,
        centre: Decimal,
        band_pct: Decimal,
        step_bps: Decimal,
        quantum: Decimal,
        rng: random.Random,
        start: Decimal | None = None,
    ) -> None:
        if centre <= 0 or not 0 < band_pct < 100 or step_bps < 0 or quantum <= 0:
            raise ValueError("centre and quantum must be positive, band_pct in (0, 100), step_bps not negative")
        self.quantum = quantum
        self.low = self._on_grid(centre * (ONE - band_pct / 100), up=True)
        self.high = self._on_grid(centre * (ONE + band_pct / 100), up=False)
        if self.low > self.high:
            raise ValueError(f"the band around {centre} is narrower than one quantum {quantum}")
        self.step_bps = step_bps
        self.rng = rng
        first = centre if start is None else start
        self.price = min(self.high, max(self.low, self._on_grid(first)))

    def _on_grid(self, value: Decimal, *, up: bool | None = None) -> Decimal:
        units = value / self.quantum
        if up is None:
            units = units.to_integral_value(ROUND_HALF_EVEN)
        else:
            units = units.to_integral_value(ROUND_CEILING if up else ROUND_FLOOR)
        return units * self.quantum

    def step(self) -> Decimal:
        """Move once and return the new price."""
        fraction = Decimal(self.rng.randint(-STEP_GRAIN, STEP_GRAIN)) / STEP_GRAIN
        moved = self._on_grid(self.price * (ONE + fraction * self.step_bps / BPS))
        if moved > self.high:
            moved = self.high - (moved - self.high)
        elif moved < self.low:
            moved = self.low + (self.low - moved)
        # A step larger than the whole band could reflect past the other edge.
        self.price = min(self.high, max(self.low, moved))
        return self.price


@dataclass(frozen=True, slots=True)
class ParsedPrices:
    prices: list[Decimal]
    skipped: int  # lines that were neither blank, a comment, nor a positive price (a header counts here)


def parse_prices(text: str) -> ParsedPrices:
    """Prices from a price file: one price per line, or CSV ``time,price`` (the last column is the price).

    Blank lines and ``#`` comments are ignored; a header or any line whose
    price is not a positive number is skipped and counted.
    """
    prices: list[Decimal] = []
    skipped = 0
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        field = line.replace(";", ",").split(",")[-1].strip()
        try:
            price = Decimal(field)
        except InvalidOperation:
            skipped += 1
            continue
        if not price.is_finite() or price <= 0:
            skipped += 1
            continue
        prices.append(price)
    return ParsedPrices(prices, skipped)


class PriceFile:
    """The newest price (last line) of a file another program keeps current; re-read when it changes.

    The file is checked on every call by its modification time and size, so
    a feed that rewrites or appends to it is followed within one cycle.  A
    file that is missing, unreadable or holds no price leaves the last good
    price in place (None before the first one) and says so once.
    """

    def __init__(self, path: str | Path, *, stat: Callable[[Path], os.stat_result] = Path.stat) -> None:
        self.path = Path(path)
        self._stat = stat
        self._signature: tuple[int, int] | None = None
        self.price: Decimal | None = None
        self._complained = False

    def current(self) -> Decimal | None:
        try:
            info = self._stat(self.path)
            signature = (info.st_mtime_ns, info.st_size)
            if signature != self._signature:
                self._signature = signature
                self._load(self.path.read_text())
        except OSError as error:
            self._complain("price file unreadable", error=str(error))
        return self.price

    def _load(self, text: str) -> None:
        parsed = parse_prices(text)
        if not parsed.prices:
            self._complain("price file holds no price", skipped=parsed.skipped)
            return
        self.price = parsed.prices[-1]
        self._complained = False

    def _complain(self, message: str, **extra: object) -> None:
        if not self._complained:
            logger.warning(message, extra={"path": str(self.path), "last_price": self.price, **extra})
            self._complained = True
