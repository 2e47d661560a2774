"""Candles equal a brute-force aggregation of the trades, for every interval, edges included, re-runs too.

Trades are noted the way the engine notes them (``klines.note_trades``) and
aggregated by calling the Celery task's function in this process.
"""

from __future__ import annotations

import datetime as dt
import json
from collections import defaultdict
from decimal import Decimal

import pytest
from channels.layers import get_channel_layer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from exchange_site.redis import get_redis
from marketdata import klines, services, tasks
from marketdata.models import INTERVALS, Kline
from marketdata.streams import KLINE_INTERVALS
from marketdata.tests.factories import make_trades
from orders.models import Trade

pytestmark = pytest.mark.django_db

D = Decimal
UTC = dt.UTC
MONDAY = dt.datetime(2024, 1, 8, tzinfo=UTC)  # a week, day and hour edge
FIELDS = ("open_time", "close_time", "open", "high", "low", "close", "volume", "quote_volume", "trades",
          "first_trade_id", "last_trade_id")  # fmt: skip


def brute_force(trades: list[tuple[int, dt.datetime, Decimal, Decimal]], interval: str) -> list[tuple]:
    """The candles of ``interval`` computed the obvious way, one bucket at a time."""
    stride = INTERVALS[interval]
    buckets: dict[dt.datetime, list] = defaultdict(list)
    for trade in trades:
        buckets[services.ORIGIN + (trade[1] - services.ORIGIN) // stride * stride].append(trade)
    candles = []
    for start, members in sorted(buckets.items()):
        members.sort()  # by trade id
        prices = [price for _, _, price, _ in members]
        candles.append(
            (
                start,
                start + stride - dt.timedelta(milliseconds=1),
                prices[0],
                max(prices),
                min(prices),
                prices[-1],
                sum(qty for *_, qty in members),
                sum(price * qty for _, _, price, qty in members),
                len(members),
                members[0][0],
                members[-1][0],
            )
        )
    return candles


def stored(market, interval: str) -> list[tuple]:
    return list(Kline.objects.filter(market=market, interval=interval).order_by("open_time").values_list(*FIELDS))


def insert_and_note(market, rows) -> None:
    make_trades(market, rows)
    klines.note_trades(symbol=market.symbol, earliest=min(time for _, time, _, _ in rows))


def assert_candles_match(market, trades) -> None:
    for interval in KLINE_INTERVALS:
        assert stored(market, interval) == brute_force(trades, interval), interval


def edge_times():
    """Times on or next to bucket edges of every interval, and anywhere within two weeks of MONDAY."""
    edges = st.builds(
        lambda k, stride, delta: MONDAY + k * stride + delta,
        st.integers(-3, 3),
        st.sampled_from(list(INTERVALS.values())),
        st.sampled_from([dt.timedelta(0), dt.timedelta(microseconds=-1), dt.timedelta(microseconds=1)]),
    )
    anywhere = st.integers(-14 * 86_400_000_000, 14 * 86_400_000_000).map(
        lambda us: MONDAY + dt.timedelta(microseconds=us)
    )
    return st.one_of(edges, anywhere)


trade_sets = st.lists(
    st.tuples(
        edge_times(),
        st.integers(1, 10_000_000).map(lambda cents: D(cents) / 100),
        st.integers(1, 100_000).map(lambda lots: D(lots) / 1000),
    ),
    min_size=1,
    max_size=40,
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(trade_sets, st.data())
def test_candles_equal_a_brute_force_aggregation_of_the_trades(market, specs, data):
    Kline.objects.all().delete()
    Trade.objects.all().delete()
    get_redis().flushdb()
    # Trade ids grow with time, as the engine's counter does; equal times are one batch.
    trades = [(i + 1, time, price, qty) for i, (time, price, qty) in enumerate(sorted(specs, key=lambda s: s[0]))]
    # Two engine batches, each noted and aggregated: the second run must merge into what
    # the first one wrote (coarse buckets shared by both batches).
    split = data.draw(st.integers(1, len(trades)), label="split")
    for batch in (trades[:split], trades[split:]):
        if batch:
            insert_and_note(market, batch)
            tasks.aggregate_market(market.symbol)
    assert_candles_match(market, trades)
    assert not get_redis().exists(klines.dirty_key(market.symbol))

    # Re-running over everything writes nothing new and changes nothing.
    before = {interval: stored(market, interval) for interval in KLINE_INTERVALS}
    assert services.aggregate_klines(market_id=market.id, since=trades[0][1]) == []
    assert {interval: stored(market, interval) for interval in KLINE_INTERVALS} == before


def test_trades_on_the_edges_of_weeks_days_and_minutes_fall_in_the_later_bucket(market):
    last_of_sunday = MONDAY - dt.timedelta(microseconds=1)
    trades = [
        (1, last_of_sunday, D("10"), D("1")),
        (2, MONDAY, D("20"), D("2")),
        (3, MONDAY + dt.timedelta(minutes=1), D("30"), D("3")),
        (4, MONDAY + dt.timedelta(minutes=1), D("5"), D("0.5")),  # same instant: order by trade id
    ]
    insert_and_note(market, trades)
    tasks.aggregate_market(market.symbol)

    weeks = stored(market, "1w")
    assert [(w[0], w[2], w[5], w[8]) for w in weeks] == [
        (MONDAY - dt.timedelta(weeks=1), D(10), D(10), 1),
        (MONDAY, D(20), D(5), 3),
    ]
    minutes = stored(market, "1m")
    assert [(m[0], m[2], m[3], m[4], m[5], m[6]) for m in minutes] == [
        (dt.datetime(2024, 1, 7, 23, 59, tzinfo=UTC), D(10), D(10), D(10), D(10), D(1)),
        (MONDAY, D(20), D(20), D(20), D(20), D(2)),
        (MONDAY + dt.timedelta(minutes=1), D(30), D(30), D(5), D(5), D("3.5")),
    ]
    assert_candles_match(market, trades)


def test_a_late_trade_in_an_old_bucket_is_merged_when_noted_with_its_time(market):
    insert_and_note(market, [(1, MONDAY + dt.timedelta(hours=5), D(100), D(1))])
    tasks.aggregate_market(market.symbol)
    # A trade whose time is earlier than what was aggregated (a clock step back, say).
    late = (2, MONDAY + dt.timedelta(minutes=3), D(90), D(2))
    insert_and_note(market, [late])
    tasks.aggregate_market(market.symbol)
    assert_candles_match(market, [(1, MONDAY + dt.timedelta(hours=5), D(100), D(1)), late])


def test_the_pushed_frame_is_the_documented_kline_payload(market):
    """Listen where the pub/sub channel layer listens for the group, and read what a consumer would get."""
    this_minute = dt.datetime.now(UTC).replace(second=0, microsecond=0)
    past = this_minute - dt.timedelta(minutes=2)  # ended: closed
    future = this_minute + dt.timedelta(minutes=10)  # not begun yet, whatever the clock does meanwhile
    pubsub = get_redis().pubsub()
    pubsub.subscribe("asgi__group__md.kline_1m.BTC_USDT")
    assert pubsub.get_message(timeout=1)["type"] == "subscribe"
    try:
        insert_and_note(
            market,
            [
                (1, past + dt.timedelta(seconds=1), D("100.50"), D("0.200")),
                (2, past + dt.timedelta(seconds=2), D("99"), D("1E+1")),
                (3, future + dt.timedelta(seconds=5), D("101"), D("0.001")),
            ],
        )
        tasks.aggregate_market(market.symbol)
        received = []
        while (message := pubsub.get_message(timeout=0.5)) is not None:
            received.append(get_channel_layer().deserialize(message["data"]))
    finally:
        pubsub.close()

    assert [(m["type"], m["stream"]) for m in received] == [("stream.message", "kline_1m@BTC_USDT")] * 2
    first = json.loads(received[0]["text"])
    assert first["stream"] == "kline_1m@BTC_USDT"
    data = first["data"]
    now_ms = klines.to_millis(dt.datetime.now(UTC))
    assert now_ms - 10_000 < data.pop("E") <= now_ms
    open_ms = klines.to_millis(past)
    assert data == {
        "e": "kline",
        "s": "BTC_USDT",
        "k": {
            "t": open_ms,
            "T": open_ms + 59_999,
            "i": "1m",
            "o": "100.5",
            "h": "100.5",
            "l": "99",
            "c": "99",
            "v": "10.2",
            "q": "1010.1",
            "n": 2,
            "x": True,
        },
    }
    later = json.loads(received[1]["text"])["data"]["k"]
    assert (later["t"], later["o"], later["n"], later["x"]) == (klines.to_millis(future), "101", 1, False)
