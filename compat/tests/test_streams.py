"""Binance's WebSockets in-process (Channels' communicator over the real Redis channel layer, the real engine).

Market streams (raw, combined, live subscriptions, every kind we serve),
listen-key user data, and the WebSocket API's signed user data subscription.
CCXT itself over real sockets is in test_ccxt_stack.py.
"""

from __future__ import annotations

import json
import time
from decimal import Decimal
from urllib.parse import urlencode

import pytest
import pytest_asyncio
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.db import connections

from accounts import services as money
from accounts.services import api_key_create
from compat import consumers, marketstreams
from compat import services as compat_services
from compat.tests.binance import binance_signature, now_ms
from exchange_site.asgi import application
from marketdata import streams
from marketdata.broadcast import publish, stream_messages
from tests.engine_driver import EngineDriver
from tests.factories import place_limit

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.asyncio]


@pytest_asyncio.fixture(autouse=True)
async def _close_consumer_db_connections():
    marketstreams.cache.clear()
    yield
    await sync_to_async(connections.close_all)()


@pytest.fixture
def engine(market):
    return EngineDriver([market])


HANDSHAKE_TIMEOUT_S = 5


async def connect(path: str) -> WebsocketCommunicator:
    communicator = WebsocketCommunicator(application, path)
    # The handshake joins groups on the real Redis channel layer: allow a busy CI machine a few seconds
    # (a 1 s default once expired mid-handshake, and the consumer left behind stalled the test run).
    connected, _ = await communicator.connect(timeout=HANDSHAKE_TIMEOUT_S)
    assert connected
    return communicator


async def ask(ws: WebsocketCommunicator, message) -> dict:
    await ws.send_to(text_data=message if isinstance(message, str) else json.dumps(message))
    return json.loads(await ws.receive_from(timeout=2))


async def receive(ws: WebsocketCommunicator, timeout: float = 2) -> dict:
    return json.loads(await ws.receive_from(timeout=timeout))


async def receive_all(ws: WebsocketCommunicator, quiet: float = 0.3) -> list[dict]:
    frames = []
    while not await ws.receive_nothing(timeout=quiet):
        frames.append(json.loads(await ws.receive_from()))
    return frames


async def trade_between(engine, seller, buyer, market, qty: str = "0.2", price: str = "100") -> None:
    await sync_to_async(place_limit)(seller, market, "sell", qty, price)
    await sync_to_async(place_limit)(buyer, market, "buy", qty, price)
    await sync_to_async(engine.drain)()


async def test_raw_streams_in_the_path_and_live_subscriptions(market, engine, alice, bob):
    ws = await connect("/binance/ws/btcusdt@trade/0")  # "0" is no stream: ignored, as CCXT expects
    assert await ask(ws, {"method": "LIST_SUBSCRIPTIONS", "id": 1}) == {"result": ["btcusdt@trade"], "id": 1}
    reply = await ask(ws, {"method": "SUBSCRIBE", "params": ["btcusdt@aggTrade", "btcusdt@depth@100ms"], "id": 2})
    assert reply == {"result": None, "id": 2}
    await trade_between(engine, alice, bob, market)
    frames = await receive_all(ws)
    by_event = {frame["e"]: frame for frame in frames}
    trade, agg, depth = by_event["trade"], by_event["aggTrade"], by_event["depthUpdate"]
    assert (trade["s"], trade["t"], trade["p"], trade["q"], trade["m"]) == ("BTCUSDT", 1, "100", "0.2", False)
    assert (agg["s"], agg["a"], agg["f"], agg["l"], agg["p"]) == ("BTCUSDT", 1, 1, 1, "100")
    assert depth["s"] == "BTCUSDT" and depth["U"] <= depth["u"]
    assert await ask(ws, {"method": "UNSUBSCRIBE", "params": ["btcusdt@trade"], "id": 3}) == {"result": None, "id": 3}
    await trade_between(engine, alice, bob, market)
    assert {frame["e"] for frame in await receive_all(ws)} == {"aggTrade", "depthUpdate"}
    await ws.disconnect()


async def test_combined_streams_wrap_each_payload_with_its_name(market, engine, alice, bob):
    ws = await connect("/binance/stream?streams=btcusdt@miniTicker/btcusdt@ticker/btcusdt@bookTicker")
    await trade_between(engine, alice, bob, market)
    await sync_to_async(place_limit)(bob, market, "buy", "0.5", "99")
    await sync_to_async(engine.drain)()
    frames = await receive_all(ws)
    named = {}
    for frame in frames:
        named.setdefault(frame["stream"], []).append(frame["data"])
    assert set(named) == {"btcusdt@miniTicker", "btcusdt@ticker", "btcusdt@bookTicker"}
    mini = named["btcusdt@miniTicker"][-1]
    assert (mini["e"], mini["s"], mini["c"], mini["v"]) == ("24hrMiniTicker", "BTCUSDT", "100", "0.2")
    ticker = named["btcusdt@ticker"][-1]
    assert (ticker["e"], ticker["c"], ticker["Q"], ticker["n"], ticker["F"], ticker["L"]) == (
        "24hrTicker", "100", "0.2", 1, 1, 1,
    )  # fmt: skip
    # bookTicker: only when the best bid or ask changes (the trade emptied the book; then a bid came).
    assert named["btcusdt@bookTicker"][-1] | {"u": 0} == {
        "u": 0, "s": "BTCUSDT", "b": "99", "B": "0.5", "a": "0", "A": "0",
    }  # fmt: skip
    assert await ask(ws, {"method": "GET_PROPERTY", "params": ["combined"], "id": 1}) == {"result": True, "id": 1}
    assert await ask(ws, {"method": "SET_PROPERTY", "params": ["combined", False], "id": 2}) == {
        "result": None,
        "id": 2,
    }
    await trade_between(engine, alice, bob, market, price="99")
    assert all("stream" not in frame for frame in await receive_all(ws))
    await ws.disconnect()


async def test_partial_books_and_klines(market, engine, alice, bob):
    await sync_to_async(place_limit)(bob, market, "buy", "0.5", "99")
    await sync_to_async(place_limit)(bob, market, "buy", "0.5", "98")
    await sync_to_async(engine.drain)()
    ws = await connect("/binance/ws")
    assert (await ask(ws, {"method": "SUBSCRIBE", "params": ["btcusdt@depth5@100ms"], "id": 1}))["result"] is None
    snapshot = await receive(ws)  # the current book, at once
    assert snapshot["bids"] == [["99", "0.5"], ["98", "0.5"]] and snapshot["asks"] == []
    assert snapshot["lastUpdateId"] > 0
    await sync_to_async(place_limit)(alice, market, "sell", "1", "101")
    await sync_to_async(engine.drain)()
    after = await receive(ws)
    assert after["asks"] == [["101", "1"]] and after["lastUpdateId"] > snapshot["lastUpdateId"]
    assert await ask(ws, {"method": "SUBSCRIBE", "params": ["btcusdt@kline_1m"], "id": 2}) == {"result": None, "id": 2}
    kline = {"e": "kline", "E": 5, "s": "BTC_USDT", "k": {"t": 0, "T": 59_999, "i": "1m", "o": "1", "h": "2",
             "l": "1", "c": "2", "v": "3", "q": "4", "n": 2, "x": True}}  # fmt: skip
    await sync_to_async(publish)([stream_messages(streams.public_group("kline_1m", "BTC_USDT"), "kline_1m@BTC_USDT",
                                                  kline)])  # fmt: skip
    candle = await receive(ws)
    assert candle["e"] == "kline" and candle["s"] == "BTCUSDT"
    assert {key: candle["k"][key] for key in ("t", "T", "s", "i", "o", "h", "l", "c", "v", "q", "n", "x")} == {
        "t": 0, "T": 59_999, "s": "BTCUSDT", "i": "1m", "o": "1", "h": "2", "l": "1", "c": "2", "v": "3", "q": "4",
        "n": 2, "x": True,
    }  # fmt: skip
    await ws.disconnect()


@pytest.mark.parametrize(
    ("message", "code"),
    [
        ("{not json", 3),
        ({"method": "SUBSCRIBE", "params": ["btcusdt@candles"], "id": 1}, 2),
        ({"method": "SUBSCRIBE", "params": ["dogeusdt@trade"], "id": 1}, 2),
        ({"method": "SUBSCRIBE", "params": ["btcusdt@kline_3m"], "id": 1}, 2),
        ({"method": "SUBSCRIBE", "params": "btcusdt@trade", "id": 1}, 2),
        ({"method": "SUBSCRIBE", "params": ["btcusdt@trade"], "id": "one"}, 2),
        ({"method": "PING", "id": 1}, 2),
        ({"method": "SET_PROPERTY", "params": ["speed", True], "id": 1}, 0),
        ({"method": "SET_PROPERTY", "params": ["combined", "yes"], "id": 1}, 1),
    ],
)
async def test_bad_requests_get_binance_error_codes_and_change_nothing(market, message, code):
    ws = await connect("/binance/ws")
    reply = await ask(ws, message)
    assert reply["error"]["code"] == code and reply["error"]["msg"]
    assert await ask(ws, {"method": "LIST_SUBSCRIPTIONS", "id": 9}) == {"result": [], "id": 9}
    await ws.disconnect()


async def test_our_own_ws_endpoint_is_untouched(market):
    ws = await connect("/ws")
    assert await ask(ws, {"method": "SUBSCRIBE", "params": ["trades@BTC_USDT"], "id": 1}) == {"result": None, "id": 1}
    assert (await ask(ws, {"method": "SUBSCRIBE", "params": ["btcusdt@trade"], "id": 2}))["error"]["code"] == (
        "unknown_stream"
    )
    await ws.disconnect()


# --- user data ------------------------------------------------------------------------------


async def test_a_listen_key_stream_reports_orders_trades_and_balances(market, engine, alice, bob, btc, monkeypatch):
    listen_key = await sync_to_async(compat_services.listen_key_create)(user=alice)
    ws = await connect(f"/binance/ws/{listen_key}")
    await sync_to_async(place_limit)(alice, market, "sell", "0.3", "100", client_order_id="ask-1")
    await sync_to_async(engine.drain)()
    new, position = await receive(ws), await receive(ws)
    assert (new["e"], new["x"], new["X"], new["s"], new["c"], new["S"], new["o"]) == (
        "executionReport", "NEW", "NEW", "BTCUSDT", "ask-1", "SELL", "LIMIT",
    )  # fmt: skip
    assert (new["q"], new["p"], new["z"], new["f"], new["V"]) == ("0.3", "100", "0", "GTC", "NONE")
    assert position["e"] == "outboundAccountPosition"
    assert {b["a"]: (b["f"], b["l"]) for b in position["B"]}["BTC"] == ("9.7", "0.3")
    await sync_to_async(place_limit)(bob, market, "buy", "0.1", "100")
    await sync_to_async(engine.drain)()
    trade = await receive(ws)
    assert (trade["x"], trade["X"], trade["l"], trade["L"], trade["z"], trade["Z"]) == (
        "TRADE", "PARTIALLY_FILLED", "0.1", "100", "0.1", "10",
    )  # fmt: skip
    assert (trade["t"], trade["m"], trade["n"], trade["N"]) == (1, True, "0.01", "USDT")  # maker 0.1% of 10 USDT
    assert (await receive(ws))["e"] == "outboundAccountPosition"
    await sync_to_async(money.deposit)(user=alice, asset=btc, amount=Decimal("2"))
    update, position = await receive(ws), await receive(ws)
    assert (update["e"], update["a"], update["d"]) == ("balanceUpdate", "BTC", "2")
    assert position["e"] == "outboundAccountPosition"
    # Closing the key ends the stream with Binance's listenKeyExpired.
    monkeypatch.setattr(consumers, "LISTEN_KEY_CHECK_S", 0.0)
    await sync_to_async(compat_services.listen_key_close)(user=alice, listen_key=listen_key)
    expired = await receive(ws)
    assert (expired["e"], expired["listenKey"]) == ("listenKeyExpired", listen_key)
    await ws.disconnect()


async def test_an_ioc_taker_reports_new_trades_then_expired(market, engine, alice, bob):
    listen_key = await sync_to_async(compat_services.listen_key_create)(user=bob)
    ws = await connect(f"/binance/stream?streams={listen_key}")
    await sync_to_async(place_limit)(alice, market, "sell", "0.1", "100")
    await sync_to_async(place_limit)(alice, market, "sell", "0.1", "101")
    await sync_to_async(engine.drain)()
    await sync_to_async(place_limit)(bob, market, "buy", "0.5", "101", time_in_force="ioc")
    await sync_to_async(engine.drain)()
    frames = await receive_all(ws)
    assert {frame["stream"] for frame in frames} == {listen_key}
    reports = [f["data"] for f in frames if f["data"]["e"] == "executionReport"]
    assert [(r["x"], r["X"], r["z"]) for r in reports] == [
        ("NEW", "NEW", "0"),
        ("TRADE", "PARTIALLY_FILLED", "0.1"),
        ("TRADE", "PARTIALLY_FILLED", "0.2"),
        ("EXPIRED", "EXPIRED", "0.2"),
    ]
    assert [r["L"] for r in reports[1:3]] == ["100", "101"] and reports[0]["f"] == "IOC"
    await ws.disconnect()


def signed_ws_params(key: str, secret: str, **extra) -> dict:
    params = {"apiKey": key, "timestamp": now_ms(), **extra}
    payload = "&".join(f"{name}={params[name]}" for name in sorted(params))
    return {**params, "signature": binance_signature(secret, payload)}


async def test_ws_api_user_data_subscription(market, engine, alice, bob):
    key, secret = await sync_to_async(api_key_create)(user=alice)
    ws = await connect("/binance/ws-api/v3")
    assert await ask(ws, {"id": "p", "method": "ping"}) == {"id": "p", "status": 200, "result": {}}
    params = signed_ws_params(key.key, secret, recvWindow=5000)
    reply = await ask(ws, {"id": 1, "method": "userDataStream.subscribe.signature", "params": params})
    assert reply == {"id": 1, "status": 200, "result": {"subscriptionId": 0}}
    again = await ask(ws, {"id": 2, "method": "userDataStream.subscribe.signature", "params": params})
    assert (again["status"], again["error"]["code"]) == (400, -2035)
    await sync_to_async(place_limit)(alice, market, "buy", "0.1", "99")
    await sync_to_async(place_limit)(bob, market, "buy", "0.1", "99")  # someone else's: never seen here
    await sync_to_async(engine.drain)()
    events = [await receive(ws), await receive(ws)]
    assert [(e["subscriptionId"], e["event"]["e"]) for e in events] == [
        (0, "executionReport"),
        (0, "outboundAccountPosition"),
    ]
    assert await ws.receive_nothing(timeout=0.3)
    assert await ask(ws, {"id": 3, "method": "session.subscriptions"}) == {
        "id": 3, "status": 200, "result": [{"subscriptionId": 0}],
    }  # fmt: skip
    assert (await ask(ws, {"id": 4, "method": "userDataStream.unsubscribe"}))["status"] == 200
    await sync_to_async(place_limit)(alice, market, "buy", "0.1", "98")
    await sync_to_async(engine.drain)()
    assert await ws.receive_nothing(timeout=0.3)
    await ws.disconnect()


async def test_ws_api_refuses_bad_signatures_replays_and_unknown_methods(market, alice):
    key, secret = await sync_to_async(api_key_create)(user=alice)
    ws = await connect("/binance/ws-api/v3")
    params = signed_ws_params(key.key, secret)
    tampered = {**params, "recvWindow": "6000"}
    reply = await ask(ws, {"id": 1, "method": "userDataStream.subscribe.signature", "params": tampered})
    assert (reply["status"], reply["error"]) == (
        400,
        {"code": -1022, "msg": "Signature for this request is not valid."},
    )
    assert (await ask(ws, {"id": 2, "method": "userDataStream.subscribe.signature", "params": params}))["status"] == 200
    other = await connect("/binance/ws-api/v3")
    replay = await ask(other, {"id": 3, "method": "userDataStream.subscribe.signature", "params": params})
    assert replay["error"]["code"] == -1021
    stale = {"apiKey": key.key, "timestamp": now_ms() - 60_000}
    stale["signature"] = binance_signature(secret, urlencode(dict(sorted(stale.items()))))
    assert (await ask(other, {"id": 4, "method": "userDataStream.subscribe.signature", "params": stale}))["error"][
        "code"
    ] == -1021
    unknown = await ask(other, {"id": 5, "method": "order.place", "params": {}})
    assert (unknown["status"], unknown["error"]["code"]) == (400, -1020)
    wrong_key = await ask(other, {"id": 6, "method": "userDataStream.subscribe.signature",
                                  "params": signed_ws_params("nope", secret)})  # fmt: skip
    assert (wrong_key["status"], wrong_key["error"]["code"]) == (401, -2015)
    started = await ask(other, {"id": 7, "method": "userDataStream.start", "params": {"apiKey": key.key}})
    listen_key = started["result"]["listenKey"]
    pinged = await ask(
        other, {"id": 8, "method": "userDataStream.ping", "params": {"apiKey": key.key, "listenKey": listen_key}}
    )
    assert pinged == {"id": 8, "status": 200, "result": {}}
    await ws.disconnect()
    await other.disconnect()


async def test_timing_of_partial_books_follows_the_stream_rate(market, engine, bob):
    """``@depth5`` (1000 ms) pushes a change at most once a second; ``@depth5@100ms`` ten times as often."""
    ws = await connect("/binance/ws/btcusdt@depth5")
    first = await receive(ws)
    assert first["bids"] == []
    started = time.monotonic()
    await sync_to_async(place_limit)(bob, market, "buy", "0.5", "99")
    await sync_to_async(engine.drain)()
    second = await receive(ws, timeout=3)
    assert second["bids"] == [["99", "0.5"]]
    assert time.monotonic() - started >= 0.7  # the first push set the next one a second later
    await ws.disconnect()


async def test_stream_names_in_the_url_may_be_percent_encoded(market):
    ws = await connect("/binance/stream?streams=btcusdt%40trade%2Fbtcusdt%40depth")
    assert await ask(ws, {"method": "LIST_SUBSCRIPTIONS", "id": 1}) == {
        "result": ["btcusdt@trade", "btcusdt@depth"],
        "id": 1,
    }
    await ws.disconnect()
