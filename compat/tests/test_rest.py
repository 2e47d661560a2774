"""The Binance REST surface in-process (Django's test client, the real engine driven step by step).

Shapes, parameter rules and error codes; CCXT itself against the running
stack is in test_ccxt_stack.py.
"""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

import pytest

from compat.tests.binance import now_ms
from marketdata import services as candles
from marketdata.klines import to_millis
from markets.models import Market
from orders.models import Order
from tests.factories import AssetFactory, MarketFactory, UserFactory, fund, place_limit

pytestmark = pytest.mark.django_db


def body(response):
    return json.loads(response.content)


@pytest.fixture
def book(market, engine, bob):
    """Bob rests a bid at 99 (0.5) and an ask at 101 (0.75); one trade at 100 (0.2) happened before."""
    place_limit(bob, market, "sell", "0.2", "100")
    carol = UserFactory(username="carol")
    fund(carol, market.quote, Decimal(1000))
    place_limit(carol, market, "buy", "0.2", "100")
    place_limit(bob, market, "buy", "0.5", "99")
    place_limit(bob, market, "sell", "0.75", "101")
    engine.drain()
    return market


@pytest.fixture
def short_wait(settings):
    """RESULT/FULL and cancels wait for an engine that is not running here: keep that wait short."""
    settings.EXCHANGE = {**settings.EXCHANGE, "BINANCE_RESULT_WAIT_S": 0.05}


def test_ping_time_and_system_status(client):
    assert body(client.get("/api/v3/ping")) == {}
    assert abs(body(client.get("/api/v3/time"))["serverTime"] - now_ms()) < 5000
    assert body(client.get("/sapi/v1/system/status")) == {"status": 0, "msg": "normal"}
    assert body(client.get("/sapi/v1/margin/allPairs")) == []


def test_exchange_info_describes_each_market_with_binance_filters(client, market):
    info = body(client.get("/api/v3/exchangeInfo"))
    (symbol,) = info["symbols"]
    assert symbol["symbol"] == "BTCUSDT"
    assert (symbol["status"], symbol["baseAsset"], symbol["quoteAsset"]) == ("TRADING", "BTC", "USDT")
    assert (symbol["baseAssetPrecision"], symbol["quoteAssetPrecision"]) == (8, 8)
    assert symbol["permissionSets"] == [["SPOT"]]
    assert set(symbol["orderTypes"]) == {"LIMIT", "LIMIT_MAKER", "MARKET"}
    filters = {f["filterType"]: f for f in symbol["filters"]}
    assert filters["PRICE_FILTER"]["tickSize"] == "0.01" == filters["PRICE_FILTER"]["minPrice"]
    assert Decimal(filters["PRICE_FILTER"]["maxPrice"]) % Decimal("0.01") == 0
    assert (filters["LOT_SIZE"]["stepSize"], filters["LOT_SIZE"]["minQty"]) == ("0.001", "0.001")
    assert filters["NOTIONAL"]["minNotional"] == "1"
    assert body(client.get("/api/v3/exchangeInfo?symbol=BTCUSDT"))["symbols"][0]["symbol"] == "BTCUSDT"
    assert body(client.get('/api/v3/exchangeInfo?symbols=["BTCUSDT"]'))["symbols"][0]["symbol"] == "BTCUSDT"
    unknown = client.get("/api/v3/exchangeInfo?symbol=DOGEUSDT")
    assert (unknown.status_code, body(unknown)) == (400, {"code": -1121, "msg": "Invalid symbol."})


def test_a_halted_market_says_halt_and_is_closed_to_orders(client, alice_binance, market):
    Market.objects.filter(pk=market.pk).update(status=Market.Status.HALTED)
    assert body(client.get("/api/v3/exchangeInfo"))["symbols"][0]["status"] == "HALT"
    refused = alice_binance.post("/api/v3/order", symbol="BTCUSDT", side="BUY", type="MARKET", quoteOrderQty="10")
    assert body(refused) == {"code": -1013, "msg": "Market is closed."}  # CCXT: MarketClosed


def test_ambiguous_binance_symbols_are_not_served(client, market):
    # BTC_USDT and BTCU_SDT would both be "BTCUSDT": neither can be reached by that name.
    MarketFactory(base=AssetFactory(symbol="BTCU"), quote=AssetFactory(symbol="SDT"))
    assert body(client.get("/api/v3/depth?symbol=BTCUSDT"))["code"] == -1121


def test_depth_trades_and_agg_trades(client, book):
    depth = body(client.get("/api/v3/depth?symbol=BTCUSDT&limit=5"))
    assert depth["bids"] == [["99", "0.5"]] and depth["asks"] == [["101", "0.75"]]
    assert depth["lastUpdateId"] > 0
    (trade,) = body(client.get("/api/v3/trades?symbol=BTCUSDT"))
    assert (trade["price"], trade["qty"], trade["quoteQty"], trade["isBuyerMaker"]) == ("100", "0.2", "20", False)
    (agg,) = body(client.get("/api/v3/aggTrades?symbol=btcusdt"))
    assert (agg["a"], agg["f"], agg["l"], agg["p"], agg["q"], agg["m"]) == (1, 1, 1, "100", "0.2", False)
    from_db = body(client.get("/api/v3/aggTrades?symbol=BTCUSDT&fromId=1"))
    assert from_db == [agg]
    assert body(client.get(f"/api/v3/aggTrades?symbol=BTCUSDT&startTime={now_ms() + 60_000}")) == []
    assert body(client.get("/api/v3/historicalTrades?symbol=BTCUSDT&fromId=1"))[0]["id"] == 1


def test_market_data_parameter_errors(client, market):
    assert body(client.get("/api/v3/depth")) == {
        "code": -1102,
        "msg": "Mandatory parameter 'symbol' was not sent, was empty/null, or malformed.",
    }
    assert body(client.get("/api/v3/depth?symbol=BTCUSDT&limit=ten"))["code"] == -1100
    assert body(client.get("/api/v3/depth?symbol=BTCUSDT&limit=1&limit=2"))["code"] == -1101
    assert body(client.get("/api/v3/klines?symbol=BTCUSDT&interval=3m")) == {"code": -1120, "msg": "Invalid interval."}
    unknown = client.get("/api/v3/avgPrice?symbol=BTCUSDT")
    assert (unknown.status_code, body(unknown)["code"]) == (404, -1020)


def test_tickers(client, book):
    ticker = body(client.get("/api/v3/ticker/24hr?symbol=BTCUSDT"))
    assert ticker["symbol"] == "BTCUSDT"
    assert (ticker["lastPrice"], ticker["lastQty"], ticker["count"]) == ("100", "0.2", 1)
    assert (ticker["bidPrice"], ticker["bidQty"], ticker["askPrice"], ticker["askQty"]) == ("99", "0.5", "101", "0.75")
    assert (ticker["firstId"], ticker["lastId"], ticker["volume"], ticker["quoteVolume"]) == (1, 1, "0.2", "20")
    assert ticker["weightedAvgPrice"] == "100"
    everything = body(client.get("/api/v3/ticker/24hr"))
    assert [t["symbol"] for t in everything] == ["BTCUSDT"]
    mini = body(client.get("/api/v3/ticker/24hr?symbol=BTCUSDT&type=MINI"))
    assert "bidPrice" not in mini and mini["lastPrice"] == "100"
    assert body(client.get("/api/v3/ticker/price?symbol=BTCUSDT")) == {"symbol": "BTCUSDT", "price": "100"}
    assert body(client.get("/api/v3/ticker/bookTicker?symbols=%5B%22BTCUSDT%22%5D")) == [
        {"symbol": "BTCUSDT", "bidPrice": "99", "bidQty": "0.5", "askPrice": "101", "askQty": "0.75"}
    ]


def test_a_market_that_never_traded_has_zero_prices(client, market):
    ticker = body(client.get("/api/v3/ticker/24hr?symbol=BTCUSDT"))
    assert (ticker["lastPrice"], ticker["bidPrice"], ticker["count"], ticker["firstId"]) == ("0", "0", 0, -1)


def test_klines_are_binance_arrays(client, book):
    start = Order.objects.order_by("created_at").first().created_at - dt.timedelta(minutes=1)
    candles.aggregate_klines(market_id=book.id, since=start)
    (candle,) = body(client.get("/api/v3/klines?symbol=BTCUSDT&interval=1m"))
    assert candle[1:6] == ["100", "100", "100", "100", "0.2"]
    assert candle[6] - candle[0] == 59_999 and candle[7] == "20" and candle[8] == 1
    assert len(candle) == 12
    after = to_millis(dt.datetime.now(dt.UTC)) + 60_000
    assert body(client.get(f"/api/v3/klines?symbol=BTCUSDT&interval=1m&startTime={after}")) == []


def test_account_lists_balances_and_commissions(alice_binance, market):
    account = body(alice_binance.get("/api/v3/account"))
    assert account["balances"] == [
        {"asset": "BTC", "free": "10", "locked": "0"},
        {"asset": "USDT", "free": "100000", "locked": "0"},
    ]
    # Fees are per market here: the account reports the highest (the test market: maker 0.1%, taker 0.2%).
    assert (account["makerCommission"], account["takerCommission"]) == (10, 20)
    assert account["commissionRates"]["taker"] == "0.002"
    assert account["permissions"] == ["SPOT"] and account["canTrade"] is True
    fees = body(alice_binance.get("/sapi/v1/asset/tradeFee", symbol="BTCUSDT"))
    assert fees == [{"symbol": "BTCUSDT", "makerCommission": "0.001", "takerCommission": "0.002"}]
    coins = {c["coin"]: c for c in body(alice_binance.get("/sapi/v1/capital/config/getall"))}
    assert coins["BTC"]["free"] == "10" and coins["BTC"]["networkList"][0]["withdrawIntegerMultiple"] == "0.00000001"


def test_place_query_and_cancel_an_order(alice_binance, market, engine, short_wait):
    placed = alice_binance.post(
        "/api/v3/order",
        symbol="BTCUSDT",
        side="BUY",
        type="LIMIT",
        timeInForce="GTC",
        quantity="0.01",
        price="100",
        newClientOrderId="mine-1",
        newOrderRespType="ACK",
    )
    ack = body(placed)
    assert placed.status_code == 200, ack
    assert set(ack) == {"symbol", "orderId", "orderListId", "clientOrderId", "transactTime"}
    assert (ack["clientOrderId"], ack["orderListId"]) == ("mine-1", -1)
    engine.drain()
    order = body(alice_binance.get("/api/v3/order", symbol="BTCUSDT", origClientOrderId="mine-1"))
    assert (order["orderId"], order["status"], order["type"], order["side"]) == (ack["orderId"], "NEW", "LIMIT", "BUY")
    assert (order["price"], order["origQty"], order["executedQty"], order["isWorking"]) == ("100", "0.01", "0", True)
    (listed,) = body(alice_binance.get("/api/v3/openOrders", symbol="BTCUSDT"))
    assert listed["orderId"] == ack["orderId"]
    cancelled = body(alice_binance.delete("/api/v3/order", symbol="BTCUSDT", orderId=ack["orderId"]))
    # The engine is not running here, so the answer is the current state once the wait is over.
    assert cancelled["orderId"] == ack["orderId"] and cancelled["origClientOrderId"] == "mine-1"
    engine.drain()
    order = body(alice_binance.get("/api/v3/order", symbol="BTCUSDT", orderId=ack["orderId"]))
    assert order["status"] == "CANCELED"
    assert body(alice_binance.get("/api/v3/openOrders")) == []
    again = alice_binance.delete("/api/v3/order", symbol="BTCUSDT", orderId=ack["orderId"])
    assert (again.status_code, body(again)) == (400, {"code": -2011, "msg": "Unknown order sent."})


def test_result_without_a_running_engine_answers_the_current_state(alice_binance, market, short_wait):
    result = body(
        alice_binance.post(
            "/api/v3/order",
            symbol="BTCUSDT",
            side="SELL",
            type="LIMIT",
            timeInForce="GTC",
            quantity="0.5",
            price="120",
            newOrderRespType="RESULT",
        )
    )
    assert (result["status"], result["executedQty"], result["selfTradePreventionMode"]) == ("NEW", "0", "NONE")
    assert result["origQty"] == "0.5" and "fills" not in result


def test_order_parameter_rules(alice_binance, market):
    def place(**params):
        response = alice_binance.post("/api/v3/order", symbol="BTCUSDT", newOrderRespType="ACK", **params)
        return response.status_code, body(response)

    limit = {"side": "BUY", "type": "LIMIT", "timeInForce": "GTC", "quantity": "0.01", "price": "100"}
    assert place(**{**limit, "timeInForce": ""})[1]["msg"] == (
        "Mandatory parameter 'timeInForce' was not sent, was empty/null, or malformed."
    )
    assert place(**{**limit, "side": "HOLD"})[1] == {"code": -1117, "msg": "Invalid side."}
    assert place(**{**limit, "type": "OCO"})[1] == {"code": -1116, "msg": "Invalid orderType."}
    assert place(**{**limit, "type": "STOP_LOSS_LIMIT"})[1]["code"] == -1013
    assert place(**{**limit, "timeInForce": "GTD"})[1] == {"code": -1115, "msg": "Invalid timeInForce."}
    assert place(**{**limit, "price": "-1"})[1]["code"] == -1100
    assert place(**{**limit, "stopPrice": "90"})[1] == {
        "code": -1106,
        "msg": "Parameter 'stopPrice' sent when not required.",
    }
    assert place(side="BUY", type="MARKET", price="100", quantity="1")[1]["code"] == -1106
    assert place(side="BUY", type="MARKET")[1]["code"] == -1102
    assert place(side="SELL", type="MARKET", quoteOrderQty="10")[1] == {
        "code": -1014,
        "msg": "Unsupported order combination.",
    }
    assert place(side="BUY", type="LIMIT_MAKER", timeInForce="GTC", quantity="0.01", price="100")[1]["code"] == -1106
    assert place(**{**limit, "selfTradePreventionMode": "DECREMENT"})[1]["code"] == -1013
    assert place(**{**limit, "newClientOrderId": "no spaces"})[1]["code"] == -1100


def test_service_refusals_become_binance_errors_clients_recognise(alice_binance, market):
    def place(**params):
        response = alice_binance.post(
            "/api/v3/order",
            symbol="BTCUSDT",
            side="BUY",
            type="LIMIT",
            timeInForce="GTC",
            newOrderRespType="ACK",
            **params,
        )
        return response.status_code, body(response)

    assert place(quantity="0.01", price="100.001") == (400, {"code": -1013, "msg": "Filter failure: PRICE_FILTER"})
    assert place(quantity="0.0001", price="100") == (400, {"code": -1013, "msg": "Filter failure: LOT_SIZE"})
    assert place(quantity="0.001", price="100") == (400, {"code": -1013, "msg": "Filter failure: NOTIONAL"})
    assert place(quantity="100", price="100000") == (
        400,
        {"code": -2010, "msg": "Account has insufficient balance for requested action."},
    )
    assert place(quantity="0", price="100") == (400, {"code": -1013, "msg": "Invalid quantity."})
    place(quantity="0.01", price="100", newClientOrderId="twice")
    assert place(quantity="0.01", price="100", newClientOrderId="twice") == (
        400,
        {"code": -2010, "msg": "Duplicate order sent."},
    )
    missing = alice_binance.get("/api/v3/order", symbol="BTCUSDT", orderId=999999)
    assert (missing.status_code, body(missing)) == (400, {"code": -2013, "msg": "Order does not exist."})
    assert body(alice_binance.get("/api/v3/order", symbol="BTCUSDT"))["code"] == -1102
    unknown_symbol = alice_binance.post("/api/v3/order", symbol="NOPEUSDT", side="BUY", type="MARKET", quantity="1")
    assert body(unknown_symbol) == {"code": -1121, "msg": "Invalid symbol."}


def test_nobody_sees_or_cancels_another_users_order(alice_binance, bob_binance, market):
    ack = body(
        alice_binance.post(
            "/api/v3/order",
            symbol="BTCUSDT",
            side="BUY",
            type="LIMIT",
            timeInForce="GTC",
            quantity="0.01",
            price="100",
            newOrderRespType="ACK",
        )
    )
    assert body(bob_binance.get("/api/v3/order", symbol="BTCUSDT", orderId=ack["orderId"]))["code"] == -2013
    assert body(bob_binance.delete("/api/v3/order", symbol="BTCUSDT", orderId=ack["orderId"]))["code"] == -2011
    assert body(bob_binance.get("/api/v3/openOrders")) == []
    assert body(bob_binance.get("/api/v3/allOrders", symbol="BTCUSDT")) == []
    assert Order.objects.get(pk=ack["orderId"]).cancel_requested_at is None


def test_all_orders_and_my_trades(alice_binance, bob, market, engine):
    place_limit(bob, market, "sell", "0.03", "100")
    ids = []
    for _ in range(3):
        ack = body(
            alice_binance.post(
                "/api/v3/order",
                symbol="BTCUSDT",
                side="BUY",
                type="LIMIT",
                timeInForce="IOC",
                quantity="0.01",
                price="100",
                newOrderRespType="ACK",
            )
        )
        ids.append(ack["orderId"])
    engine.drain()
    orders = body(alice_binance.get("/api/v3/allOrders", symbol="BTCUSDT"))
    assert [o["orderId"] for o in orders] == ids and {o["status"] for o in orders} == {"FILLED"}
    assert [o["orderId"] for o in body(alice_binance.get("/api/v3/allOrders", symbol="BTCUSDT", limit=2))] == ids[1:]
    assert [
        o["orderId"] for o in body(alice_binance.get("/api/v3/allOrders", symbol="BTCUSDT", orderId=ids[1], limit=1))
    ] == [ids[1]]
    trades = body(alice_binance.get("/api/v3/myTrades", symbol="BTCUSDT"))
    assert [t["orderId"] for t in trades] == ids
    first = trades[0]
    assert (first["isBuyer"], first["isMaker"], first["commissionAsset"], first["commission"]) == (
        True,
        False,
        "BTC",
        "0.00002",
    )
    assert [t["id"] for t in body(alice_binance.get("/api/v3/myTrades", symbol="BTCUSDT", fromId=trades[1]["id"]))] == [
        trades[1]["id"],
        trades[2]["id"],
    ]
    assert len(body(alice_binance.get("/api/v3/myTrades", symbol="BTCUSDT", orderId=ids[0]))) == 1


def test_cancel_all_open_orders_of_a_symbol(alice_binance, market, engine, short_wait):
    for price in ("90", "91"):
        alice_binance.post(
            "/api/v3/order",
            symbol="BTCUSDT",
            side="BUY",
            type="LIMIT",
            timeInForce="GTC",
            quantity="0.02",
            price=price,
            newOrderRespType="ACK",
        )
    engine.drain()
    cancelled = body(alice_binance.delete("/api/v3/openOrders", symbol="BTCUSDT"))
    assert [o["price"] for o in cancelled] == ["90", "91"]
    engine.drain()
    assert body(alice_binance.get("/api/v3/openOrders")) == []
    nothing = alice_binance.delete("/api/v3/openOrders", symbol="BTCUSDT")
    assert body(nothing) == {"code": -2011, "msg": "Unknown order sent."}


def test_listen_keys(client, alice_binance, bob_binance):
    created = client.post("/api/v3/userDataStream", HTTP_X_MBX_APIKEY=alice_binance.key)
    listen_key = body(created)["listenKey"]
    assert len(listen_key) == 60
    # Asking again returns the same key (extended), as Binance does.
    again = body(client.post("/api/v3/userDataStream", HTTP_X_MBX_APIKEY=alice_binance.key))["listenKey"]
    assert again == listen_key
    keep = client.put(f"/api/v3/userDataStream?listenKey={listen_key}", HTTP_X_MBX_APIKEY=alice_binance.key)
    assert (keep.status_code, body(keep)) == (200, {})
    # Bob cannot touch Alice's key.
    other = client.put(f"/api/v3/userDataStream?listenKey={listen_key}", HTTP_X_MBX_APIKEY=bob_binance.key)
    assert body(other) == {"code": -1125, "msg": "This listenKey does not exist."}
    assert body(client.post("/api/v3/userDataStream"))["code"] == -2014
    assert body(client.post("/api/v3/userDataStream", HTTP_X_MBX_APIKEY="nope"))["code"] == -2015
    closed = client.delete(f"/api/v3/userDataStream?listenKey={listen_key}", HTTP_X_MBX_APIKEY=alice_binance.key)
    assert body(closed) == {}
    gone = client.put(f"/api/v3/userDataStream?listenKey={listen_key}", HTTP_X_MBX_APIKEY=alice_binance.key)
    assert body(gone)["code"] == -1125
