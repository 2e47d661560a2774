"""Redis or PostgreSQL unreachable: every API answers a 503 that says to retry, in its own error shape.

The outage is real: the app's Redis client (or the database connection) is
pointed at a port nothing listens on, so connecting is refused exactly as when
the server is down.  Nothing is mocked.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from django.db import connection
from django.test import override_settings
from rest_framework.test import APIClient

from accounts.services import api_key_create
from exchange_site import outages
from exchange_site.redis import get_redis
from orders.models import Order
from tests.signing import signed_request

ORDER = {"market": "BTC_USDT", "side": "buy", "type": "limit", "price": "100", "quantity": "1"}


def closed_port() -> int:
    """A local port nothing listens on (bound once by us, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def redis_down() -> Iterator[None]:
    with override_settings(REDIS_URL=f"redis://127.0.0.1:{closed_port()}/0"):
        get_redis.cache_clear()
        try:
            yield
        finally:
            get_redis.cache_clear()


@contextmanager
def database_down() -> Iterator[None]:
    saved = dict(connection.settings_dict)
    connection.close()
    connection.settings_dict.update(HOST="127.0.0.1", PORT=str(closed_port()))
    try:
        yield
    finally:
        connection.close()
        connection.settings_dict.clear()
        connection.settings_dict.update(saved)


def assert_rest_503(response) -> None:
    assert response.status_code == 503, response.content
    assert response["Content-Type"] == "application/json"
    body = response.json()
    assert body["code"] == "service_unavailable"
    assert "retry" in body["message"]
    assert response["Retry-After"] == str(outages.RETRY_AFTER_S)


@pytest.mark.django_db
def test_with_redis_down_the_rest_api_answers_503_and_places_nothing(alice, market):
    key, secret = api_key_create(user=alice, label="bot")
    session = APIClient()
    session.force_login(alice)
    anonymous = APIClient()
    with redis_down():
        assert_rest_503(anonymous.get("/api/v1/markets"))
        assert_rest_503(session.get("/api/v1/account/balances"))
        assert_rest_503(session.post("/api/v1/orders", ORDER, format="json"))
        # A signed request: the replay check itself needs Redis.
        assert_rest_503(signed_request(APIClient(), "POST", "/api/v1/orders", key=key.key, secret=secret, data=ORDER))
    assert Order.objects.count() == 0
    # Redis back: the same requests work again (the client reconnects by itself).
    assert session.get("/api/v1/account/balances").status_code == 200
    assert anonymous.get("/api/v1/markets").status_code == 200


@pytest.mark.django_db
def test_with_redis_down_the_binance_api_answers_its_retryable_error(market):
    with redis_down():
        response = APIClient().get("/api/v3/depth", {"symbol": "BTCUSDT"})
    assert response.status_code == 503
    assert response.json() == {
        "code": -1001,
        "msg": "Internal error; unable to process your request. Please try again.",
    }
    assert response["Retry-After"] == str(outages.RETRY_AFTER_S)


@pytest.mark.django_db
def test_with_redis_down_a_page_answers_503_not_a_500(market):
    with redis_down():
        response = APIClient().get("/")  # the overview reads the tickers from Redis
    assert response.status_code == 503
    assert response["Content-Type"].startswith("text/html")
    assert b"Temporarily unavailable" in response.content and b"retry" in response.content


@pytest.mark.django_db(transaction=True)
def test_with_the_database_down_the_apis_and_pages_answer_503(alice, market):
    session = APIClient()
    session.force_login(alice)
    with database_down():
        assert_rest_503(session.get("/api/v1/account/balances"))
        assert_rest_503(session.post("/api/v1/orders", ORDER, format="json"))
        assert_rest_503(session.get("/api/v1/orders/1"))
        page = session.get("/account/")
        assert page.status_code == 503 and b"Temporarily unavailable" in page.content
        binance = APIClient().get("/api/v3/exchangeInfo")
        assert (binance.status_code, binance.json()["code"]) == (503, -1001)
    assert Order.objects.count() == 0
    assert session.get("/api/v1/account/balances").status_code == 200


@pytest.mark.django_db
def test_other_errors_are_not_disguised_as_outages(alice):
    assert not outages.is_outage(ValueError("bug"))
    assert not outages.is_outage(KeyError("bug"))
