"""A real Celery worker process: trades noted the engine's way become candles, and a lost task is swept up."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from exchange_site.redis import get_redis
from marketdata import klines, tasks
from marketdata.models import Kline
from marketdata.streams import KLINE_INTERVALS
from marketdata.tests.factories import make_trades
from tests.stack import LiveStack

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

D = Decimal
T0 = dt.datetime(2024, 3, 4, 12, 0, tzinfo=dt.UTC)


def candles(market) -> dict[str, list[tuple]]:
    rows = Kline.objects.filter(market=market).order_by("interval", "open_time")
    found: dict[str, list[tuple]] = {}
    for k in rows:
        found.setdefault(k.interval, []).append((k.open_time, k.open, k.close, k.volume, k.trades))
    return found


def test_noted_trades_become_candles_in_a_real_worker(market):
    with LiveStack(web=False, engine=False, celery=True) as stack:
        make_trades(market, [(1, T0, D(100), D(1)), (2, T0 + dt.timedelta(minutes=1), D(110), D(2))])
        klines.note_trades(symbol=market.symbol, earliest=T0)  # enqueues the task on the real broker
        stack.wait_until(
            lambda: len(candles(market).get("1m", [])) == 2 and candles(market)["1w"][0][-1] == 2,
            timeout=30,
            what="the worker's candles",
        )
        assert candles(market)["1h"] == [(T0, D(100), D(110), D(3), 2)]
        stack.wait_until(
            lambda: not get_redis().exists(klines.dirty_key(market.symbol)), timeout=10, what="a clean market"
        )

        # A note whose task never reached a worker (broker hiccup, killed worker): the hash
        # says dirty and nobody runs...
        make_trades(market, [(3, T0 + dt.timedelta(minutes=2), D(90), D(1))])
        assert klines._note(market.symbol, T0 + dt.timedelta(minutes=2))  # recorded, not enqueued
        # ... until the beat's sweep (called here rather than waiting for beat) enqueues it again.
        assert tasks.sweep_klines() == [market.symbol]
        stack.wait_until(lambda: candles(market)["1d"][0][-1] == 3, timeout=30, what="the swept market's candles")
    assert set(candles(market)) == set(KLINE_INTERVALS)
