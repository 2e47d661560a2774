"""Candles (klines): trades aggregated per market and interval, written only by ``marketdata.services``."""

from __future__ import annotations

import datetime as dt

from django.db import models
from django.db.models import F, Q

from accounts.models import AMOUNT
from marketdata.streams import KLINE_INTERVALS
from markets.models import Market

INTERVALS: dict[str, dt.timedelta] = {
    "1m": dt.timedelta(minutes=1),
    "5m": dt.timedelta(minutes=5),
    "15m": dt.timedelta(minutes=15),
    "1h": dt.timedelta(hours=1),
    "4h": dt.timedelta(hours=4),
    "1d": dt.timedelta(days=1),
    "1w": dt.timedelta(weeks=1),
}
assert tuple(INTERVALS) == KLINE_INTERVALS, "one list of intervals for streams, storage and the API"


class Kline(models.Model):
    """One candle: the trades of ``market`` whose time falls in [open_time, open_time + interval).

    Buckets are aligned on Monday 2000-01-03 00:00 UTC, so days start at midnight
    UTC and weeks on Monday.  A bucket without trades has no row.  The key is
    (market, interval, open_time): TimescaleDB requires the time column in every
    unique key, and it is also the order every read wants.  ``first_trade_id`` and
    ``last_trade_id`` let coarse candles be rolled up from finer ones exactly
    (open = the price of the lowest trade id, close = of the highest).
    """

    pk = models.CompositePrimaryKey("market_id", "interval", "open_time")
    # No index of its own: the primary key starts with market_id.
    market = models.ForeignKey(Market, on_delete=models.PROTECT, related_name="+", db_index=False)
    interval = models.CharField(max_length=3, choices=[(name, name) for name in KLINE_INTERVALS])
    open_time = models.DateTimeField()
    close_time = models.DateTimeField(help_text="The bucket's last millisecond: open_time + interval - 1 ms.")
    open = models.DecimalField(**AMOUNT)
    high = models.DecimalField(**AMOUNT)
    low = models.DecimalField(**AMOUNT)
    close = models.DecimalField(**AMOUNT)
    volume = models.DecimalField(help_text="Base quantity traded.", **AMOUNT)
    quote_volume = models.DecimalField(help_text="Quote quantity traded.", **AMOUNT)
    trades = models.IntegerField()
    first_trade_id = models.BigIntegerField()
    last_trade_id = models.BigIntegerField()

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(interval__in=KLINE_INTERVALS), name="kline_interval_known"),
            models.CheckConstraint(condition=Q(close_time__gt=F("open_time")), name="kline_closes_after_open"),
            models.CheckConstraint(
                condition=Q(low__lte=F("open"))
                & Q(low__lte=F("close"))
                & Q(high__gte=F("open"))
                & Q(high__gte=F("close")),
                name="kline_open_close_within_low_high",
            ),
            models.CheckConstraint(condition=Q(trades__gt=0), name="kline_has_trades"),
            models.CheckConstraint(condition=Q(first_trade_id__lte=F("last_trade_id")), name="kline_trade_ids_ordered"),
        ]

    def __str__(self) -> str:
        return f"{self.market_id} {self.interval} {self.open_time:%Y-%m-%d %H:%M} c={self.close}"
