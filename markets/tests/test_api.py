"""Public market endpoints: the list and one market, filters as decimal strings."""

from __future__ import annotations

from decimal import Decimal

import pytest
from rest_framework.test import APIClient

from markets.services import market_set_status
from tests.factories import AssetFactory, MarketFactory

pytestmark = pytest.mark.django_db

BTC_USDT = {
    "symbol": "BTC_USDT",
    "base": "BTC",
    "quote": "USDT",
    "base_precision": 8,
    "quote_precision": 8,
    "status": "trading",
    "tick_size": "0.01",
    "lot_size": "0.001",
    "min_notional": "1",
    "max_quantity": "1000000000",
    "max_notional": None,
    "maker_fee_rate": "0.001",
    "taker_fee_rate": "0.002",
}


@pytest.fixture
def client():
    return APIClient()


def test_markets_list_is_public_with_filters_as_strings(client, market, usdt):
    MarketFactory(base=AssetFactory(symbol="ETH", precision=18), quote=usdt, tick_size=Decimal("0.1"))

    response = client.get("/api/v1/markets")

    assert response.status_code == 200
    assert [m["symbol"] for m in response.json()] == ["BTC_USDT", "ETH_USDT"]
    assert response.json()[0] == BTC_USDT
    assert response.json()[1]["tick_size"] == "0.1" and response.json()[1]["base_precision"] == 18


def test_markets_list_is_empty_without_markets(client, db):
    response = client.get("/api/v1/markets")
    assert response.status_code == 200 and response.json() == []


@pytest.mark.parametrize("symbol", ["BTC_USDT", "btc_usdt"])
def test_market_detail_is_public(client, market, symbol):
    response = client.get(f"/api/v1/markets/{symbol}")
    assert response.status_code == 200
    assert response.json() == BTC_USDT


def test_market_detail_shows_a_halted_market(client, market):
    market_set_status(market=market, status="halted")
    assert client.get("/api/v1/markets/BTC_USDT").json()["status"] == "halted"


def test_unknown_market_is_404_unknown_market(client, market):
    response = client.get("/api/v1/markets/DOGE_USDT")
    assert response.status_code == 404
    body = response.json()
    assert body["code"] == "unknown_market" and body["details"] == {"market": "DOGE_USDT"}
    assert body["message"]


def test_public_endpoints_ignore_bad_credentials(client, market):
    """No authentication runs on them, so a stale API key or session does not break them."""
    response = client.get("/api/v1/markets", HTTP_X_API_KEY="nope", HTTP_X_TIMESTAMP="1", HTTP_X_SIGNATURE="x")
    assert response.status_code == 200


def test_markets_are_read_only(client, market):
    response = client.post("/api/v1/markets", {"symbol": "X_Y"}, format="json")
    assert response.status_code == 405 and response.json()["code"] == "method_not_allowed"
