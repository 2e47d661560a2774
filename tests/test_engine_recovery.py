"""The running engine survives losing its database session and Redis losing its data.

Both with the real ``run_engine`` process (tests/stack.py): the database
session is killed with ``pg_terminate_backend`` (what a PostgreSQL restart
does to it), Redis with ``FLUSHALL`` (a restart without persistence).
"""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.db import connection

from exchange_site.redis import get_redis
from marketdata import selectors
from orders.models import Order
from tests.factories import place_limit
from tests.stack import LiveStack

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

ENGINE_LOCK_CLASS = 0x45584348


def engine_backend_pid() -> int | None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND classid = %s", [ENGINE_LOCK_CLASS])
        row = cursor.fetchone()
    return row[0] if row else None


def processed(*orders: Order) -> bool:
    return not Order.objects.filter(pk__in=[o.pk for o in orders], status=Order.Status.PENDING).exists()


def test_a_killed_database_session_is_replaced_and_the_market_claimed_again(market, alice, bob):
    with LiveStack(web=False, engine=True) as stack:
        first = place_limit(alice, market, "sell", "1", "100")
        stack.wait_until(lambda: processed(first), timeout=20, what="the engine to start and book the order")
        old_pid = engine_backend_pid()
        assert old_pid is not None
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_terminate_backend(%s)", [old_pid])
        taker = place_limit(bob, market, "buy", "0.4", "100")
        stack.wait_until(lambda: processed(taker), timeout=30, what="the engine to recover and match")
        assert engine_backend_pid() not in (None, old_pid), "the new session holds the market's lock"
        first.refresh_from_db()
        assert first.filled_quantity == Decimal("0.4")


def test_an_engine_whose_market_was_taken_while_its_session_was_gone_stops(market, alice, bob):
    """Two owners of one market would match it twice: the engine that lost its claim exits, saying why."""
    with LiveStack(web=False, engine=True) as stack:
        first = place_limit(alice, market, "sell", "1", "100")
        stack.wait_until(lambda: processed(first), timeout=20, what="the engine to start and book the order")
        old_pid = engine_backend_pid()
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_terminate_backend(%s)", [old_pid])
            # Stand in for a second engine that claims the market before this one recovers.
            cursor.execute("SELECT pg_advisory_lock(%s, %s)", [ENGINE_LOCK_CLASS, market.id])
        try:
            place_limit(bob, market, "buy", "0.4", "100")
            engine = stack.processes.pop("engine")  # it is expected to exit: not a failure of the stack
            returncode = engine.wait(timeout=30)
            assert returncode != 0
            assert "Another engine already runs market" in stack.log_path("engine").read_text()
        finally:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s, %s)", [ENGINE_LOCK_CLASS, market.id])


def test_redis_losing_everything_loses_no_order_and_the_read_models_come_back(market, alice, bob):
    with LiveStack(web=False, engine=True) as stack:
        resting = place_limit(alice, market, "sell", "1", "101")
        stack.wait_until(lambda: processed(resting), timeout=20, what="the engine to book the order")
        get_redis().flushall()
        late = place_limit(bob, market, "buy", "2", "99")  # its stream entry lands in a recreated stream, or is lost
        stack.wait_until(lambda: processed(late), timeout=30, what="the order placed after the flush")

        def depth_back() -> bool:
            depth = selectors.depth_snapshot(symbol=market.symbol, limit=10)
            return depth["asks"] == [["101", "1"]] and depth["bids"] == [["99", "2"]]

        stack.wait_until(depth_back, timeout=15, what="the depth read model to be rebuilt")
