"""The dirty-market protocol: notes enqueue once, nothing noted is lost, crashes and lost messages recover.

Runs go through the real Redis (the dirty hash, the Celery broker's queue) and
PostgreSQL; the task function is called in this process.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import threading
from decimal import Decimal

import pytest
from django.db import connections

from exchange_site.redis import get_redis
from marketdata import klines, services, tasks
from marketdata.models import Kline
from marketdata.tests.factories import make_trades

pytestmark = pytest.mark.django_db

D = Decimal
T0 = dt.datetime(2024, 3, 4, 12, 0, tzinfo=dt.UTC)


def queued_tasks() -> list[tuple[str, list]]:
    """(task name, args) of the messages waiting in the Celery broker's default queue."""
    found = []
    for raw in get_redis().lrange("celery", 0, -1):
        message = json.loads(raw)
        args, _kwargs, _embed = json.loads(base64.b64decode(message["body"]))
        found.append((message["headers"]["task"], args))
    return found


def dirty(symbol: str) -> dict[str, str]:
    return {k.decode(): v.decode() for k, v in get_redis().hgetall(klines.dirty_key(symbol)).items()}


def minute_candle(market, at: dt.datetime) -> Kline:
    return Kline.objects.get(market=market, interval="1m", open_time=at.replace(second=0, microsecond=0))


def test_the_first_note_enqueues_a_run_and_later_ones_only_record(market):
    klines.note_trades(symbol="BTC_USDT", earliest=T0 + dt.timedelta(seconds=5))
    klines.note_trades(symbol="BTC_USDT", earliest=T0 + dt.timedelta(seconds=9))
    klines.note_trades(symbol="BTC_USDT", earliest=T0)  # earlier than both: the range widens

    assert queued_tasks() == [("marketdata.tasks.aggregate_market", ["BTC_USDT"])]
    assert dirty("BTC_USDT") == {"from": str(klines.to_micros(T0)), "seq": "3"}
    assert klines.from_micros(klines.to_micros(T0 + dt.timedelta(microseconds=7))) == T0 + dt.timedelta(microseconds=7)


def test_a_run_aggregates_pushes_and_leaves_the_market_clean(market):
    make_trades(market, [(1, T0, D(100), D(1))])
    klines.note_trades(symbol="BTC_USDT", earliest=T0)

    assert tasks.aggregate_market("BTC_USDT") == 7  # one candle per interval
    assert dirty("BTC_USDT") == {}
    assert Kline.objects.filter(market=market).count() == 7
    assert tasks.aggregate_market("BTC_USDT") == 0  # nothing noted: nothing to do
    klines.note_trades(symbol="BTC_USDT", earliest=T0)  # clean again, so a new note enqueues again
    assert len(queued_tasks()) == 2


def test_a_trade_noted_between_claim_and_finish_is_not_lost(market):
    make_trades(market, [(1, T0, D(100), D(1))])
    klines.note_trades(symbol="BTC_USDT", earliest=T0)
    taken = klines.claim("BTC_USDT")
    services.aggregate_klines(market_id=market.id, since=taken.start)
    # Meanwhile the engine commits another trade and notes it: seq moves on.
    later = T0 + dt.timedelta(minutes=7)
    make_trades(market, [(2, later, D(105), D(1))])
    klines.note_trades(symbol="BTC_USDT", earliest=later)

    assert klines.finish("BTC_USDT", taken) is False  # not clean: the hash stays, from the new note on
    assert dirty("BTC_USDT") == {"from": str(klines.to_micros(later)), "seq": "2"}
    tasks.aggregate_market("BTC_USDT")
    assert minute_candle(market, later).close == D(105)
    assert Kline.objects.get(market=market, interval="1h").trades == 2
    assert dirty("BTC_USDT") == {}


def test_a_run_loops_until_no_note_came_in_while_it_aggregated(market, monkeypatch):
    """The engine notes a trade while the task is inside its aggregation: the same run picks it up."""
    make_trades(market, [(1, T0, D(100), D(1))])
    klines.note_trades(symbol="BTC_USDT", earliest=T0)
    later = T0 + dt.timedelta(hours=2)
    starts = []
    real = services.aggregate_klines

    def aggregate_while_trading(*, market_id, since):
        starts.append(since)
        written = real(market_id=market_id, since=since)
        if len(starts) == 1:
            make_trades(market, [(2, later, D(90), D(3))])
            klines.note_trades(symbol="BTC_USDT", earliest=later)
        return written

    monkeypatch.setattr(klines, "aggregate_klines", aggregate_while_trading)
    tasks.aggregate_market("BTC_USDT")

    # The second round starts at the new note, not back at the first one.
    assert starts == [T0, later]
    assert Kline.objects.get(market=market, interval="1d").volume == D(4)
    assert dirty("BTC_USDT") == {}
    assert len(queued_tasks()) == 1  # only the first note's


def test_a_run_that_crashed_after_claiming_is_redone_from_its_claim(market):
    make_trades(market, [(1, T0, D(100), D(1))])
    klines.note_trades(symbol="BTC_USDT", earliest=T0)
    klines.claim("BTC_USDT")  # ... and the worker is killed here
    later = T0 + dt.timedelta(minutes=30)
    make_trades(market, [(2, later, D(101), D(1))])
    klines.note_trades(symbol="BTC_USDT", earliest=later)
    assert dirty("BTC_USDT")["claimed"] == str(klines.to_micros(T0))

    tasks.aggregate_market("BTC_USDT")
    assert minute_candle(market, T0).close == D(100)  # the crashed run's range was redone
    assert minute_candle(market, later).close == D(101)
    assert dirty("BTC_USDT") == {}


def test_a_run_leaves_at_once_when_another_run_holds_the_market(market):
    make_trades(market, [(1, T0, D(100), D(1))])
    klines.note_trades(symbol="BTC_USDT", earliest=T0)
    get_redis().delete("celery")
    held, release = threading.Event(), threading.Event()

    def other_run():
        connection = connections.create_connection("default")
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_lock(%s, %s)", [services.KLINE_LOCK, market.id])
                held.set()
                release.wait(10)
        finally:
            connection.close()

    thread = threading.Thread(target=other_run)
    thread.start()
    try:
        assert held.wait(10)
        assert tasks.aggregate_market("BTC_USDT") == 0  # left at once
    finally:
        release.set()
        thread.join()
    assert Kline.objects.filter(market=market).count() == 0
    assert dirty("BTC_USDT")["from"] == str(klines.to_micros(T0))  # left for the holder, untouched
    assert queued_tasks() == []  # the holder checks for more work after releasing, not the leaver
    assert tasks.aggregate_market("BTC_USDT") == 7


def test_a_note_that_lands_as_a_run_ends_gets_a_run(market, monkeypatch):
    """The note's own run may leave at once (the lock is still held): the ender must enqueue one."""
    make_trades(market, [(1, T0, D(100), D(1))])
    klines.note_trades(symbol="BTC_USDT", earliest=T0)
    get_redis().delete("celery")
    real_unlock = klines._unlock

    def note_just_before_unlock(market_id):
        # The run has finished (hash deleted) and still holds the lock: a note now
        # creates the hash, and the run it enqueues would find the lock taken.
        klines.note_trades(symbol="BTC_USDT", earliest=T0 + dt.timedelta(minutes=1))
        get_redis().delete("celery")  # that run left at once
        real_unlock(market_id)

    monkeypatch.setattr(klines, "_unlock", note_just_before_unlock)
    tasks.aggregate_market("BTC_USDT")
    assert queued_tasks() == [("marketdata.tasks.aggregate_market", ["BTC_USDT"])]


def test_a_run_over_budget_stops_and_enqueues_its_successor(market, monkeypatch):
    make_trades(market, [(1, T0, D(100), D(1))])
    klines.note_trades(symbol="BTC_USDT", earliest=T0)
    get_redis().delete("celery")
    real = services.aggregate_klines

    def busy_market(*, market_id, since):
        klines.note_trades(symbol="BTC_USDT", earliest=since)  # trades keep coming
        return real(market_id=market_id, since=since)

    monkeypatch.setattr(klines, "aggregate_klines", busy_market)
    assert klines.run_market(symbol="BTC_USDT", budget_s=0) == 7
    assert "from" in dirty("BTC_USDT")
    assert queued_tasks() == [("marketdata.tasks.aggregate_market", ["BTC_USDT"])]


def test_the_sweep_enqueues_dirty_markets_and_notes_trades_no_candle_covers(market):
    from tests.factories import AssetFactory, MarketFactory

    eth = MarketFactory(base=AssetFactory(symbol="ETH"), quote=market.quote)
    quiet = MarketFactory(base=AssetFactory(symbol="SOL"), quote=market.quote)
    # BTC: noted, but the task was lost with its worker.
    make_trades(market, [(1, T0, D(100), D(1))])
    klines.note_trades(symbol="BTC_USDT", earliest=T0)
    get_redis().delete("celery")
    # ETH: trades committed, and Redis lost the note (or it never came).
    make_trades(eth, [(1, T0, D(10), D(1)), (2, T0 + dt.timedelta(days=1), D(11), D(1))])

    assert sorted(tasks.sweep_klines()) == ["BTC_USDT", "ETH_USDT"]
    assert sorted(args[0] for _, args in queued_tasks()) == ["BTC_USDT", "ETH_USDT"]
    assert dirty("ETH_USDT")["from"] == str(klines.to_micros(T0))
    assert not dirty(quiet.symbol)

    tasks.aggregate_market("BTC_USDT")
    tasks.aggregate_market("ETH_USDT")
    get_redis().delete("celery")
    assert tasks.sweep_klines() == []  # all covered: nothing to do
    assert queued_tasks() == []


def test_note_trades_never_raises(market, settings):
    """The engine calls it after its commit: a Redis failure is logged, not raised (the sweep recovers)."""
    from exchange_site.redis import get_redis as cached

    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    cached.cache_clear()
    try:
        klines.note_trades(symbol="BTC_USDT", earliest=T0)
    finally:
        cached.cache_clear()


def test_the_beat_schedule_names_registered_tasks(settings):
    from exchange_site.celery import app

    app.loader.import_default_modules()
    scheduled = {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}
    assert "marketdata.tasks.sweep_klines" in scheduled
    assert scheduled <= set(app.tasks)
    assert tasks.aggregate_market.name == "marketdata.tasks.aggregate_market"
