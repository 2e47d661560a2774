"""The 24-hour rolling ticker of one market, kept in memory by the engine that owns the market.

The engine sees every trade of its market the moment it commits, so it can
keep the 24h statistics exactly without a database scan per request: trades
are folded into one-minute buckets, and the window is the buckets of the last
24 hours (to the minute, like Binance's rolling ticker).  A snapshot costs at
most 1,440 bucket reads and is taken once per batch with trades and on a
timer, never per request: REST and WebSocket clients read what the engine
last published to Redis.

No Django here: amounts are ``Decimal``, times are milliseconds since the epoch.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from decimal import Decimal

MINUTE_MS = 60_000
WINDOW_MS = 24 * 60 * MINUTE_MS
PERCENT = Decimal("0.01")


@dataclass(slots=True)
class MinuteBucket:
    start_ms: int
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal
    quote_volume: Decimal
    trades: int


class RollingTicker:
    """Open, high, low, last, volumes and count over the trailing 24 hours, in minute buckets."""

    def __init__(self) -> None:
        self.buckets: deque[MinuteBucket] = deque()
        self.last_price: Decimal | None = None

    def add_bucket(self, bucket: MinuteBucket) -> None:
        """Load a whole minute (rebuilding from the database), in time order."""
        self.buckets.append(bucket)
        self.last_price = bucket.close

    def add_trade(self, *, price: Decimal, qty: Decimal, quote: Decimal, time_ms: int) -> None:
        start = time_ms - time_ms % MINUTE_MS
        buckets = self.buckets
        if buckets and buckets[-1].start_ms == start:
            bucket = buckets[-1]
            bucket.high = max(bucket.high, price)
            bucket.low = min(bucket.low, price)
            bucket.close = price
            bucket.volume += qty
            bucket.quote_volume += quote
            bucket.trades += 1
        else:
            buckets.append(MinuteBucket(start, price, price, price, price, qty, quote, 1))
        self.last_price = price

    def _evict(self, now_ms: int) -> None:
        oldest = now_ms - now_ms % MINUTE_MS - WINDOW_MS
        while self.buckets and self.buckets[0].start_ms <= oldest:
            self.buckets.popleft()

    def snapshot(self, now_ms: int) -> dict[str, Decimal | int | None]:
        """The statistics of the window ending now; zero volumes and the last price when it holds no trade."""
        self._evict(now_ms)
        buckets = self.buckets
        if not buckets:
            last = self.last_price
            return {
                "open": last, "high": last, "low": last, "close": last, "volume": Decimal(0),
                "quote_volume": Decimal(0), "change": Decimal(0) if last is not None else None,
                "change_percent": Decimal(0) if last is not None else None, "trades": 0,
                "open_time": now_ms - WINDOW_MS, "close_time": now_ms,
            }  # fmt: skip
        first = buckets[0]
        high, low = first.high, first.low
        volume = quote_volume = Decimal(0)
        trades = 0
        for bucket in buckets:
            high = max(high, bucket.high)
            low = min(low, bucket.low)
            volume += bucket.volume
            quote_volume += bucket.quote_volume
            trades += bucket.trades
        close = buckets[-1].close
        change = close - first.open
        return {
            "open": first.open, "high": high, "low": low, "close": close, "volume": volume,
            "quote_volume": quote_volume, "change": change,
            "change_percent": (change * 100 / first.open).quantize(PERCENT) if first.open else Decimal(0),
            "trades": trades, "open_time": first.start_ms, "close_time": now_ms,
        }  # fmt: skip
