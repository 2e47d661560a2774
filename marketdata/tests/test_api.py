"""Public REST market data: shapes, limits, errors."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from tests.factories import place_limit

pytestmark = pytest.mark.django_db


@pytest.fixture
def api() -> APIClient:
    return APIClient()


def test_depth_trades_and_tickers_after_a_trade(api, market, engine, alice, bob):
    place_limit(alice, market, "sell", "2", "101.5")
    place_limit(alice, market, "sell", "1", "102")
    place_limit(bob, market, "buy", "1", "99")
    place_limit(bob, market, "buy", "0.5", "101.5")
    engine.drain()

    depth = api.get("/api/v1/markets/btc_usdt/depth?limit=1").json()
    assert depth["bids"] == [["99", "1"]] and depth["asks"] == [["101.5", "1.5"]]
    assert depth["lastUpdateId"] > 0
    assert len(api.get("/api/v1/markets/BTC_USDT/depth").json()["asks"]) == 2
    (trade,) = api.get("/api/v1/markets/BTC_USDT/trades").json()
    assert {k: trade[k] for k in ("id", "price", "qty", "quote_qty", "taker_side")} == {
        "id": 1, "price": "101.5", "qty": "0.5", "quote_qty": "50.75", "taker_side": "buy",
    }  # fmt: skip
    ticker = api.get("/api/v1/markets/BTC_USDT/ticker").json()
    assert (ticker["close"], ticker["volume"], ticker["best_bid"], ticker["best_ask"]) == (
        "101.5",
        "0.5",
        "99",
        "101.5",
    )
    assert api.get("/api/v1/tickers").json() == [
        ticker | {"close_time": api.get("/api/v1/tickers").json()[0]["close_time"]}
    ]


def test_a_market_whose_engine_never_ran_has_empty_data(api, market):
    assert api.get("/api/v1/markets/BTC_USDT/depth").json() == {"lastUpdateId": 0, "bids": [], "asks": []}
    assert api.get("/api/v1/markets/BTC_USDT/trades").json() == []
    ticker = api.get("/api/v1/markets/BTC_USDT/ticker").json()
    assert (ticker["market"], ticker["close"], ticker["trades"]) == ("BTC_USDT", None, 0)


@pytest.mark.parametrize(
    ("path", "status", "code"),
    [
        ("/api/v1/markets/DOGE_USDT/depth", 404, "unknown_market"),
        ("/api/v1/markets/DOGE_USDT/trades", 404, "unknown_market"),
        ("/api/v1/markets/DOGE_USDT/ticker", 404, "unknown_market"),
        ("/api/v1/markets/BTC_USDT/depth?limit=0", 400, "invalid_request"),
        ("/api/v1/markets/BTC_USDT/depth?limit=5001", 400, "invalid_request"),
        ("/api/v1/markets/BTC_USDT/depth?limit=ten", 400, "invalid_request"),
        ("/api/v1/markets/BTC_USDT/trades?limit=501", 400, "invalid_request"),
    ],
)
def test_bad_requests_get_a_clear_error(api, market, path, status, code):
    response = api.get(path)
    assert response.status_code == status
    assert response.json()["code"] == code and response.json()["message"]
