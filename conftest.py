"""Shared fixtures: real PostgreSQL and Redis (embedded under .data/test), factories, an engine driver."""

from __future__ import annotations

from decimal import Decimal

import pytest

from tests.factories import AssetFactory, MarketFactory, UserFactory, fund


@pytest.fixture(autouse=True)
def _clean_redis_and_caches(request):
    """Each test starts with an empty Redis and no cached system account ids."""
    if "no_django" in request.keywords:
        yield
        return
    from accounts import authentication
    from accounts.selectors import system_user_id
    from exchange_site.redis import get_redis
    from markets.selectors import forget_cached_markets

    get_redis().flushdb()
    system_user_id.cache_clear()
    forget_cached_markets()
    authentication._cached_keys.clear()
    yield


@pytest.fixture
def btc(db):
    return AssetFactory(symbol="BTC", precision=8)


@pytest.fixture
def usdt(db):
    return AssetFactory(symbol="USDT", precision=8)


@pytest.fixture
def market(btc, usdt):
    """BTC_USDT: tick 0.01, lot 0.001, min notional 1, maker 0.1%, taker 0.2%."""
    return MarketFactory(base=btc, quote=usdt)


@pytest.fixture
def alice(btc, usdt):
    user = UserFactory(username="alice")
    fund(user, btc, Decimal(10))
    fund(user, usdt, Decimal(100_000))
    return user


@pytest.fixture
def bob(btc, usdt):
    user = UserFactory(username="bob")
    fund(user, btc, Decimal(10))
    fund(user, usdt, Decimal(100_000))
    return user


@pytest.fixture
def engine(market):
    """Drives the real engine in-process over the markets of the test."""
    from tests.engine_driver import EngineDriver

    return EngineDriver([market])
