"""The market-integrity refusals in Binance's words, and exchangeInfo describing the same limits."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from marketdata.broadcast import publish_reference_prices
from markets.models import Market
from markets.selectors import forget_cached_markets
from markets.services import market_set_status
from orders.models import Order

pytestmark = pytest.mark.django_db


def body(response):
    return json.loads(response.content)


def place(client, **params):
    fields = {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC", "quantity": "0.1",
              "price": "100", "newOrderRespType": "ACK"} | params  # fmt: skip
    response = client.post("/api/v3/order", **{k: v for k, v in fields.items() if v is not None})
    return response.status_code, body(response)


def test_integrity_refusals_become_binance_errors(alice_binance, market, settings):
    publish_reference_prices(symbol="BTC_USDT", best_bid=None, best_ask=None, last=Decimal(100))
    assert place(alice_binance, price="151") == (400, {"code": -1013, "msg": "Filter failure: PERCENT_PRICE_BY_SIDE"})

    Market.objects.filter(pk=market.pk).update(max_notional=Decimal(50))
    forget_cached_markets()
    assert place(alice_binance, quantity="1") == (400, {"code": -1013, "msg": "Filter failure: NOTIONAL"})
    Market.objects.filter(pk=market.pk).update(max_notional=None)
    forget_cached_markets()

    settings.EXCHANGE = {**settings.EXCHANGE, "MAX_OPEN_ORDERS": 1}
    assert place(alice_binance)[0] == 200
    assert place(alice_binance) == (400, {"code": -1013, "msg": "Filter failure: MAX_NUM_ORDERS"})
    settings.EXCHANGE = {**settings.EXCHANGE, "MAX_OPEN_ORDERS": 200}

    market_set_status(market=market, status="cancel_only")
    status, answer = place(alice_binance)
    assert (status, answer["code"]) == (400, -2010) and "cancel-only" in answer["msg"]
    market_set_status(market=market, status="halted")
    assert place(alice_binance) == (400, {"code": -1013, "msg": "Market is closed."})
    assert Order.objects.count() == 1


def test_a_market_order_without_a_reference_price_is_refused(alice_binance, market):
    status, answer = place(alice_binance, type="MARKET", timeInForce=None, price=None)
    assert (status, answer["code"]) == (400, -2010) and "no price to protect" in answer["msg"]
    assert not Order.objects.exists()


def test_exchange_info_shows_the_band_the_order_cap_the_maximum_notional_and_cancel_only(client, market):
    Market.objects.filter(pk=market.pk).update(max_notional=Decimal(5000), status=Market.Status.CANCEL_ONLY)
    forget_cached_markets()
    (symbol,) = body(client.get("/api/v3/exchangeInfo"))["symbols"]
    filters = {f["filterType"]: f for f in symbol["filters"]}
    assert symbol["status"] == "BREAK"
    band = filters["PERCENT_PRICE_BY_SIDE"]
    assert (band["bidMultiplierUp"], band["askMultiplierDown"]) == ("1.5", "0.5")
    assert filters["MAX_NUM_ORDERS"]["maxNumOrders"] == 200
    assert (filters["NOTIONAL"]["maxNotional"], filters["NOTIONAL"]["applyMaxToMarket"]) == ("5000", True)
