"""engine_health (the operators' engine view): last batch per market and the command stream's backlog in Redis."""

from __future__ import annotations

from decimal import Decimal

import pytest

from exchange_site.redis import get_redis
from matching.engine import GROUP
from matching.selectors import engine_health
from orders import streams
from orders.services import OrderRequest, place_order

pytestmark = pytest.mark.django_db


def health_of(symbol: str):
    return next(h for h in engine_health() if h.symbol == symbol)


def place(user, market, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):  # the XADD runs after commit
        return place_order(
            user=user,
            market=market,
            request=OrderRequest(side="buy", type="limit", price=Decimal(100), quantity=Decimal(1)),
        )


def test_before_the_engine_ever_ran(market):
    health = health_of("BTC_USDT")
    assert (health.last_batch_at, health.batches, health.lag, health.pending) == (None, 0, None, None)
    assert health.problem.startswith("no command stream yet")


def test_a_stream_without_the_engines_group_says_the_engine_has_not_started(
    market, alice, django_capture_on_commit_callbacks
):
    place(alice, market, django_capture_on_commit_callbacks)
    health = health_of("BTC_USDT")
    assert health.stream_length == 1 and health.lag is None
    assert health.problem == "no engine consumer group: the engine has not started"


def test_waiting_in_flight_and_settled(market, alice, engine, django_capture_on_commit_callbacks):
    engine.start()  # creates the consumer group
    health = health_of("BTC_USDT")
    assert (health.lag, health.pending, health.problem) == (0, 0, "")

    place(alice, market, django_capture_on_commit_callbacks)
    place(alice, market, django_capture_on_commit_callbacks)
    health = health_of("BTC_USDT")
    assert (health.stream_length, health.lag, health.pending) == (2, 2, 0)
    assert health.oldest_waiting is not None

    # A consumer that read one entry and has not acked it yet: one in flight, one waiting.
    get_redis().xreadgroup(GROUP, "someone", {streams.stream_key("BTC_USDT"): ">"}, count=1)
    health = health_of("BTC_USDT")
    assert (health.lag, health.pending) == (1, 1)

    engine.drain()
    health = health_of("BTC_USDT")
    assert health.lag == 0 and health.oldest_waiting is None
    assert health.last_batch_at is not None and health.batches >= 1


def test_the_admin_page_lists_every_market(admin_client, market, engine):
    engine.start()
    page = admin_client.get("/admin/matching/enginestate/")
    assert page.status_code == 200
    text = page.content.decode()
    assert "Engine health" in text and 'data-market="BTC_USDT"' in text


def test_the_health_page_is_for_staff_only(client, market, alice):
    client.force_login(alice)
    assert client.get("/admin/matching/enginestate/").status_code == 302
