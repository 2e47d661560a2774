"""The engine under faults: a commit that fails, a command that always fails, a database session that dies.

Real commits (``transaction=True``): the faults come from PostgreSQL itself, a
deferred trigger that refuses the batch's COMMIT, a market whose tick an
operator coarsened under pending orders, a backend terminated from another
connection; nothing is mocked.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from types import SimpleNamespace

import pytest
from django.db import connection

from accounts.selectors import fee_user_id
from exchange_site.redis import get_redis
from marketdata import selectors
from marketdata import streams as md_streams
from markets.models import Market
from matching.engine import GROUP, Engine
from orders import services, streams
from orders.models import Order, Trade
from tests import figures
from tests.engine_driver import EngineThread
from tests.factories import place_limit
from tests.group_listener import GroupListener
from tests.invariants import assert_exchange_invariants

pytestmark = pytest.mark.django_db(transaction=True)
S = Order.Status


@contextmanager
def failing_commits(times: int) -> Iterator[None]:
    """Make the next ``times`` engine COMMITs fail, at COMMIT itself (a deferred constraint trigger).

    The trigger counts with a sequence because a sequence survives the rollback
    of the transaction it refused.  DDL outlives the test's table flush: dropped
    in ``finally``.
    """
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            CREATE SEQUENCE test_commit_faults;
            CREATE FUNCTION test_fail_commit() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                IF nextval('test_commit_faults') <= {int(times)} THEN
                    RAISE EXCEPTION 'injected commit failure';
                END IF;
                RETURN NULL;
            END $$;
            CREATE CONSTRAINT TRIGGER test_fail_commit AFTER UPDATE ON matching_enginestate
                DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION test_fail_commit();
            """
        )
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute(
                "DROP TRIGGER test_fail_commit ON matching_enginestate;"
                " DROP FUNCTION test_fail_commit(); DROP SEQUENCE test_commit_faults;"
            )


def read_models(symbol: str) -> tuple:
    return (
        selectors.depth_snapshot(symbol=symbol, limit=100),
        selectors.recent_trades(symbol=symbol, limit=100),
        get_redis().hgetall(selectors.reference_key(symbol)),
    )


def test_a_failed_commit_emits_nothing_and_its_retry_emits_each_event_once(market, alice, bob):
    # Migrations create the fee account; a flushed test database lacks it, and
    # ``fee_user_id`` would otherwise create (and cache) it inside the batch that fails.
    fee_user_id()
    engine = Engine([market], block_ms=1)
    engine.start()
    symbol = market.symbol
    listener = GroupListener(
        md_streams.public_group("depth", symbol),
        md_streams.public_group("trades", symbol),
        md_streams.user_group(alice.id),
        md_streams.user_group(bob.id),
    )
    before = read_models(symbol)
    ask = place_limit(alice, market, "sell", "1", "100")
    bid = place_limit(bob, market, "buy", "0.4", "100")

    with failing_commits(1):
        with pytest.raises(Exception, match="injected commit failure"):
            engine.read(pending=False)
        assert listener.frames(wait=0.3) == [], "a batch that did not commit published events"
        assert read_models(symbol) == before, "a batch that did not commit changed the read models"
        assert not Trade.objects.exists()
        assert set(Order.objects.values_list("status", flat=True)) == {S.PENDING}
        assert get_redis().xpending(streams.stream_key(symbol), GROUP)["pending"] == 2, "entries must stay unacked"

        assert engine.read(pending=True) == 2  # the retry: the same entries, from this consumer's pending list

    frames = listener.frames(wait=0.3)
    trades = [f["data"] for f in frames if f["stream"] == f"trades@{symbol}"]
    depth = [f["data"] for f in frames if f["stream"] == f"depth@{symbol}"]
    fills = [f["data"] for f in frames if f["stream"] == "fills"]
    orders = Counter((f["data"]["id"], f["data"]["status"]) for f in frames if f["stream"] == "orders")
    assert [t["t"] for t in trades] == [1]
    assert [(d["U"], d["u"]) for d in depth] == [(1, 1)], "update ids reused or skipped by the retry"
    assert sorted((f["order_id"], f["trade_id"]) for f in fills) == sorted([(ask.id, 1), (bid.id, 1)])
    assert orders == Counter({(ask.id, "partially_filled"): 1, (bid.id, "filled"): 1})
    assert selectors.depth_snapshot(symbol=symbol, limit=10)["asks"] == [["100", "0.6"]]
    assert get_redis().xpending(streams.stream_key(symbol), GROUP)["pending"] == 0
    listener.close()
    assert_exchange_invariants(engine_driver_of(engine))


def engine_driver_of(engine: Engine) -> SimpleNamespace:
    """``assert_exchange_invariants`` compares the database with an engine's memory through ``driver.engine``."""
    return SimpleNamespace(engine=engine)


@contextmanager
def engine_log() -> Iterator[list[logging.LogRecord]]:
    """The engine's log records (its logger does not propagate to the root, where caplog listens)."""
    records: list[logging.LogRecord] = []
    handler = logging.Handler(logging.ERROR)
    handler.emit = records.append
    logger = logging.getLogger("matching")
    logger.addHandler(handler)
    try:
        yield records
    finally:
        logger.removeHandler(handler)


def test_a_command_that_keeps_failing_is_dead_lettered_and_the_market_goes_on(market, alice, bob):
    # Orders accepted on a 0.01 tick; then an operator coarsens the tick to 0.1 (the
    # admin allows it) and restarts the engine.  The order at 100.05 can no longer be
    # converted to ticks: every batch holding it fails, whatever the retry.
    first = place_limit(alice, market, "sell", "0.5", "100.10")
    poison = place_limit(alice, market, "sell", "0.5", "100.05")
    taker = place_limit(bob, market, "buy", "1", "100.10")
    Market.objects.filter(pk=market.pk).update(tick_size=Decimal("0.1"))
    coarse = Market.objects.select_related("base", "quote").get(pk=market.pk)
    with engine_log() as records, EngineThread([coarse]) as run:
        started = time.monotonic()
        run.wait_until(lambda: status(taker) != S.PENDING, timeout=20, what="the market to move past the poison")
        blocked_s = time.monotonic() - started
        assert status(first) == S.FILLED
        assert status(taker) == S.PARTIALLY_FILLED  # 0.5 bought, 0.5 resting
        later = place_limit(alice, market, "sell", "0.2", "100.10")
        run.wait_until(lambda: status(later) == S.FILLED, timeout=10, what="a later order to trade")
        time.sleep(1.5)  # a sweep is due every 0.5 s: the poison must not be retried from the database either

    redis = get_redis()
    dead = redis.xrange(streams.dead_letter_key(market.symbol))
    assert len(dead) == 1, dead
    fields = dead[0][1]
    assert (fields[b"c"], int(fields[b"o"])) == (b"place", poison.id)
    assert fields[b"error"].startswith(b"ValueError: 100.05") and fields[b"entry"]
    assert redis.xpending(streams.stream_key(market.symbol), GROUP)["pending"] == 0, "the poison's entry is acked"
    alerts = [r for r in records if r.getMessage().startswith("dead-lettered")]
    assert len(alerts) == 1 and alerts[0].order_id == poison.id and alerts[0].entry_id == fields[b"entry"].decode()
    # Nothing was written for it: still pending, its funds still held, and a restarted
    # engine does not retry it from the database.
    assert Order.objects.get(pk=poison.pk).status == S.PENDING
    restarted = Engine([coarse], block_ms=1)
    restarted.start()
    assert restarted.settle_owed(restarted.markets[market.symbol], older_than=None) == 0
    assert Trade.objects.count() == 2
    assert_exchange_invariants(engine_driver_of(restarted))
    # Its owner can still take the funds back: a cancel of a pending order needs no price.
    services.request_cancel(user=alice, order_id=poison.id)
    restarted.read(pending=False)
    assert Order.objects.get(pk=poison.pk).status == S.CANCELLED
    assert_exchange_invariants(engine_driver_of(restarted))
    figures.report("dead_letter", {"batches_failed_before_isolation": 3, "dead_lettered": len(dead),
                                   "market_blocked_s": round(blocked_s, 1)})  # fmt: skip


def status(order: Order) -> str:
    return Order.objects.values_list("status", flat=True).get(pk=order.pk)


def test_an_owed_order_that_keeps_failing_is_dead_lettered_by_the_sweep(market, alice, bob):
    poison = place_limit(alice, market, "sell", "0.5", "100.05")
    get_redis().delete(streams.stream_key(market.symbol))  # its entry was lost: only the sweep can find it
    good = place_limit(bob, market, "buy", "0.5", "99.90")
    Market.objects.filter(pk=market.pk).update(tick_size=Decimal("0.1"))
    engine = Engine([Market.objects.select_related("base", "quote").get(pk=market.pk)], block_ms=1)
    engine.start()
    market_engine = engine.markets[market.symbol]
    for _ in range(2):
        with pytest.raises(ValueError, match="not on the tick"):
            engine.settle_owed(market_engine, older_than=None)
    assert engine.settle_owed(market_engine, older_than=None) == 2  # third time: one by one
    assert Order.objects.get(pk=good.pk).status == S.OPEN
    assert Order.objects.get(pk=poison.pk).status == S.PENDING
    (dead,) = get_redis().xrange(streams.dead_letter_key(market.symbol))
    assert (dead[1][b"c"], int(dead[1][b"o"]), dead[1][b"entry"]) == (b"place", poison.id, b"")
    assert engine.settle_owed(market_engine, older_than=None) == 0, "a dead-lettered command is not swept again"
    assert_exchange_invariants(engine_driver_of(engine))


def test_lost_database_sessions_are_not_poison_and_the_engine_reclaims_its_market(market, alice, bob):
    # dead_letter_after=1: any failure counted against a command would dead-letter it at once.
    with EngineThread([market], dead_letter_after=1) as run:
        run.wait_until(lambda: engine_backend(market) is not None, timeout=10, what="the engine to claim its market")
        for round_ in range(2):
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_terminate_backend(%s)", [engine_backend(market)])
            order = place_limit(alice, market, "sell", "0.1", f"{101 + round_}")
            run.wait_until(lambda o=order: status(o) == S.OPEN, timeout=15, what="the engine to reconnect")
            assert engine_backend(market) is not None, "the new session holds the market's lock"
        place_limit(bob, market, "buy", "0.2", "102")
        run.wait_until(lambda: Trade.objects.count() == 2, timeout=10, what="the trades")
    assert not get_redis().exists(streams.dead_letter_key(market.symbol))
    assert_exchange_invariants(engine_driver_of(run.engine))


def engine_backend(market: Market) -> int | None:
    """The PostgreSQL backend that holds ``market``'s engine lock, if any."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted"
            " AND classid::bigint = %s AND objid::bigint = %s",
            [0x45584348, market.id],
        )
        row = cursor.fetchone()
    return row[0] if row else None
