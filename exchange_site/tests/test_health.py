"""``/healthz`` and ``/readyz`` against the real PostgreSQL and Redis, and the checks' failure paths."""

from __future__ import annotations

import time

import pytest
import redis
from django.db import connection
from django.db.backends.postgresql.base import DatabaseWrapper

from exchange_site import health
from exchange_site.redis import get_redis
from markets.models import Market
from tests.factories import AssetFactory, MarketFactory

# Port 1 on the loopback: nothing listens there, so connecting fails at once.
UNREACHABLE_REDIS_URL = "redis://127.0.0.1:1/0"


def beat(symbol: str, *, age_s: float) -> None:
    """Write ``symbol``'s engine heartbeat as the engine does, ``age_s`` seconds old."""
    get_redis().hset(health.HEARTBEAT_KEY, symbol, int((time.time() - age_s) * 1000))


@pytest.fixture
def eth_market(usdt):
    return MarketFactory(base=AssetFactory(symbol="ETH", precision=8), quote=usdt)


def test_healthz_answers_without_touching_the_database_or_redis(client, settings):
    # No django_db mark: pytest-django refuses any database access in this test.
    settings.REDIS_URL = UNREACHABLE_REDIS_URL
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "alive"}
    assert response["Cache-Control"].startswith("max-age=0")


@pytest.mark.django_db
def test_readyz_is_ready_when_every_trading_market_has_a_fresh_heartbeat(client, market, eth_market):
    beat("BTC_USDT", age_s=0.5)
    beat("ETH_USDT", age_s=1.5)

    response = client.get("/readyz")

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ready"
    assert "failing" not in body
    assert body["checks"]["database"]["ok"] is True
    assert body["checks"]["database"]["latency_ms"] >= 0
    assert body["checks"]["redis"]["ok"] is True
    assert body["checks"]["redis"]["latency_ms"] >= 0
    engines = body["checks"]["engines"]
    assert engines["ok"] is True
    assert engines["stale_after_s"] == 10.0
    assert engines["markets"]["BTC_USDT"]["state"] == "running"
    assert 400 <= engines["markets"]["BTC_USDT"]["age_ms"] < 5000
    assert engines["markets"]["ETH_USDT"]["state"] == "running"


@pytest.mark.django_db
def test_readyz_names_the_market_whose_heartbeat_is_stale(client, market, eth_market):
    beat("BTC_USDT", age_s=15)
    beat("ETH_USDT", age_s=0)

    response = client.get("/readyz")

    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "not_ready"
    assert body["failing"] == ["engines"]
    engines = body["checks"]["engines"]
    assert engines["markets"]["BTC_USDT"]["state"] == "stale"
    assert engines["markets"]["BTC_USDT"]["age_ms"] >= 15000
    assert engines["markets"]["ETH_USDT"]["state"] == "running"
    assert "Engine down for BTC_USDT (last heartbeat 15." in body["message"]
    assert "`manage.py run_engine --markets BTC_USDT`" in body["message"]
    assert "ETH_USDT" not in body["message"]


@pytest.mark.django_db
def test_readyz_names_every_trading_market_without_a_heartbeat(client, market, eth_market):
    response = client.get("/readyz")

    assert response.status_code == 503
    body = response.json()
    assert body["failing"] == ["engines"]
    assert body["checks"]["engines"]["markets"] == {"BTC_USDT": {"state": "missing"}, "ETH_USDT": {"state": "missing"}}
    assert "BTC_USDT (no heartbeat), ETH_USDT (no heartbeat)" in body["message"]
    assert "run_engine --markets BTC_USDT,ETH_USDT" in body["message"]


@pytest.mark.django_db
def test_a_halted_market_needs_no_engine_and_the_limit_comes_from_settings(client, settings, market, eth_market):
    Market.objects.filter(pk=eth_market.pk).update(status=Market.Status.HALTED)
    settings.HEALTH_ENGINE_STALE_S = 30
    beat("BTC_USDT", age_s=20)

    response = client.get("/readyz")

    assert response.status_code == 200
    assert set(response.json()["checks"]["engines"]["markets"]) == {"BTC_USDT"}


@pytest.mark.django_db
def test_a_cancel_only_market_still_needs_its_engine(client, market, eth_market):
    Market.objects.filter(pk=eth_market.pk).update(status=Market.Status.CANCEL_ONLY)
    beat("BTC_USDT", age_s=1)

    response = client.get("/readyz")

    assert response.status_code == 503
    assert response.json()["checks"]["engines"]["markets"]["ETH_USDT"] == {"state": "missing"}


@pytest.mark.django_db
def test_a_heartbeat_from_the_future_is_a_clock_problem_not_a_live_engine(market):
    check = health.check_engines(now_ms=1_000_000, stale_after_s=10)  # no heartbeat yet: missing
    assert check.details["markets"]["BTC_USDT"] == {"state": "missing"}
    get_redis().hset(health.HEARTBEAT_KEY, "BTC_USDT", 1_000_000 + 60_000)

    check = health.check_engines(now_ms=1_000_000, stale_after_s=10)

    assert not check.ok
    assert check.details["markets"]["BTC_USDT"] == {"state": "clock_skew", "age_ms": -60_000}
    assert "60.0 s in the future: sync the clocks" in check.message


@pytest.mark.django_db
def test_a_garbled_heartbeat_counts_as_missing(market):
    get_redis().hset(health.HEARTBEAT_KEY, "BTC_USDT", "not-a-number")
    check = health.check_engines()
    assert not check.ok
    assert check.details["markets"]["BTC_USDT"] == {"state": "missing"}


def test_check_redis_fails_with_advice_when_redis_does_not_answer():
    check = health.check_redis(client=redis.Redis.from_url(UNREACHABLE_REDIS_URL, socket_connect_timeout=1))
    assert not check.ok
    assert check.name == "redis"
    assert check.details == {"error": "ConnectionError"}
    assert "REDIS_URL" in check.message


@pytest.mark.django_db
def test_check_engines_fails_when_the_heartbeats_cannot_be_read(market):
    check = health.check_engines(client=redis.Redis.from_url(UNREACHABLE_REDIS_URL, socket_connect_timeout=1))
    assert not check.ok
    assert "fix the database or Redis check first" in check.message


@pytest.mark.django_db
def test_readyz_names_redis_when_it_is_unreachable(client, settings, market):
    settings.REDIS_URL = UNREACHABLE_REDIS_URL

    response = client.get("/readyz")

    assert response.status_code == 503
    body = response.json()
    assert body["failing"] == ["redis", "engines"]
    assert body["checks"]["database"]["ok"] is True
    assert body["message"].startswith("Redis did not answer PING")
    # The probe is public: error details stay in the log.
    assert "127.0.0.1" not in response.content.decode()


@pytest.mark.django_db
def test_check_database_fails_with_advice_when_postgresql_does_not_answer():
    unreachable = DatabaseWrapper(
        {**connection.settings_dict, "HOST": "127.0.0.1", "PORT": "1", "OPTIONS": {"connect_timeout": 2}},
        alias="unreachable",
    )
    try:
        check = health.check_database(connection=unreachable)
    finally:
        unreachable.close()
    assert not check.ok
    assert check.name == "database"
    assert check.details == {"error": "OperationalError"}
    assert "DATABASE_URL" in check.message


@pytest.mark.django_db
def test_probes_answer_get_and_head_only(client):
    assert client.head("/healthz").status_code == 200
    assert client.post("/healthz").status_code == 405
    assert client.post("/readyz").status_code == 405
