"""GET /api/v1/markets/{symbol}/klines: candles oldest first, Binance's start/end/limit rules, clear errors."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from marketdata import services
from marketdata.klines import to_millis
from marketdata.tests.factories import make_trades

pytestmark = pytest.mark.django_db

D = Decimal
T0 = dt.datetime(2024, 3, 4, 12, 0, tzinfo=dt.UTC)
MINUTE = dt.timedelta(minutes=1)


@pytest.fixture
def five_minutes(market):
    """Trades in minutes 0, 1, 2, 4 (none in 3) after T0; one candle per minute with trades."""
    make_trades(
        market,
        [
            (1, T0 + dt.timedelta(seconds=10), D("100"), D("1")),
            (2, T0 + dt.timedelta(seconds=50), D("102.5"), D("0.5")),
            (3, T0 + MINUTE, D("101"), D("2")),
            (4, T0 + 2 * MINUTE, D("99"), D("1")),
            (5, T0 + 4 * MINUTE + dt.timedelta(seconds=59), D("98"), D("3")),
        ],
    )
    services.aggregate_klines(market_id=market.id, since=T0)
    return [to_millis(T0 + k * MINUTE) for k in (0, 1, 2, 4)]


def klines(client, symbol="BTC_USDT", **params):
    return client.get(f"/api/v1/markets/{symbol}/klines", params)


def test_candles_come_oldest_first_with_every_field(client, five_minutes):
    response = klines(client, interval="1m")

    assert response.status_code == 200
    body = response.json()
    assert [c["open_time"] for c in body] == five_minutes  # no candle for the minute without trades
    assert body[0] == {
        "open_time": to_millis(T0),
        "close_time": to_millis(T0) + 59_999,
        "open": "100",
        "high": "102.5",
        "low": "100",
        "close": "102.5",
        "volume": "1.5",
        "quote_volume": "151.25",
        "trades": 2,
        "closed": True,
    }
    assert klines(client, interval="5m").json() == [
        {
            "open_time": to_millis(T0),
            "close_time": to_millis(T0) + 5 * 60_000 - 1,
            "open": "100",
            "high": "102.5",
            "low": "98",
            "close": "98",
            "volume": "7.5",
            "quote_volume": "746.25",
            "trades": 5,
            "closed": True,
        }
    ]


def test_a_candle_still_open_says_so(client, market):
    now = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=5)
    make_trades(market, [(1, now, D(1), D(1))])
    services.aggregate_klines(market_id=market.id, since=now)
    assert [c["closed"] for c in klines(client, interval="1m").json()] == [False]


def test_start_end_and_limit_select_by_open_time(client, five_minutes):
    t0, t1, t2, t4 = five_minutes
    assert [c["open_time"] for c in klines(client, interval="1m", start_time=t1).json()] == [t1, t2, t4]
    assert [c["open_time"] for c in klines(client, interval="1m", start_time=t1 + 1).json()] == [t2, t4]
    assert [c["open_time"] for c in klines(client, interval="1m", end_time=t2).json()] == [t0, t1, t2]
    both = klines(client, interval="1m", start_time=t1, end_time=t4 - 1).json()
    assert [c["open_time"] for c in both] == [t1, t2]
    # With a start, the first `limit` from it; without one, the last `limit` (still oldest first).
    assert [c["open_time"] for c in klines(client, interval="1m", start_time=t0, limit=2).json()] == [t0, t1]
    assert [c["open_time"] for c in klines(client, interval="1m", limit=2).json()] == [t2, t4]
    assert [c["open_time"] for c in klines(client, interval="1m", end_time=t2, limit=2).json()] == [t1, t2]
    assert klines(client, interval="1m", start_time=t4 + 1).json() == []
    assert len(klines(client, interval="1m", limit=1000).json()) == 4


def test_the_default_limit_is_500(client, market):
    make_trades(market, [(k + 1, T0 + k * MINUTE, D(1), D(1)) for k in range(501)])
    services.aggregate_klines(market_id=market.id, since=T0)
    body = klines(client, interval="1m").json()
    assert len(body) == 500
    assert body[-1]["open_time"] == to_millis(T0 + 500 * MINUTE)


def test_the_symbol_is_case_insensitive_and_needs_no_authentication(client, five_minutes):
    assert len(klines(client, symbol="btc_usdt", interval="1m").json()) == 4


@pytest.mark.parametrize(
    ("params", "code", "field"),
    [
        ({}, "invalid_interval", "interval"),
        ({"interval": "2m"}, "invalid_interval", "interval"),
        ({"interval": "1M"}, "invalid_interval", "interval"),
        ({"interval": "1m", "start_time": "yesterday"}, "invalid_time", "start_time"),
        ({"interval": "1m", "start_time": "-1"}, "invalid_time", "start_time"),
        ({"interval": "1m", "end_time": "1.5"}, "invalid_time", "end_time"),
        ({"interval": "1m", "end_time": "253402300800000"}, "invalid_time", "end_time"),
        ({"interval": "1m", "limit": "0"}, "invalid_limit", "limit"),
        ({"interval": "1m", "limit": "1001"}, "invalid_limit", "limit"),
        ({"interval": "1m", "limit": "ten"}, "invalid_limit", "limit"),
    ],
)
def test_bad_parameters_are_refused_with_a_code_naming_them(client, market, params, code, field):
    response = klines(client, **params)
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == code
    assert body["message"].startswith(f"{field}: ")
    assert field in body["details"]["fields"]


def test_a_bad_interval_is_named_with_the_valid_ones(client, market):
    assert klines(client, interval="2m").json()["message"] == (
        'interval: "2m" is not an interval; use one of 1m 5m 15m 1h 4h 1d 1w.'
    )


def test_an_end_before_the_start_is_refused(client, market):
    response = klines(client, interval="1m", start_time=2000, end_time=1000)
    assert response.status_code == 400
    assert response.json() == {
        "code": "invalid_time_range",
        "message": "end_time (1000) is before start_time (2000).",
        "details": {"start_time": 2000, "end_time": 1000},
    }


def test_an_unknown_market_is_404(client, market):
    response = klines(client, symbol="DOGE_USDT", interval="1m")
    assert response.status_code == 404
    assert response.json()["code"] == "unknown_market"


def test_the_schema_documents_the_endpoint(client, market):
    schema = client.get("/api/schema", HTTP_ACCEPT="application/json").json()
    operation = schema["paths"]["/api/v1/markets/{symbol}/klines"]["get"]
    assert {p["name"] for p in operation["parameters"]} >= {"symbol", "interval", "start_time", "end_time", "limit"}
