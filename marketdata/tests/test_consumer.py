"""The /ws consumer in-process (Channels' communicator over the real Redis channel layer).

Bad frames, limits, authentication and isolation; the whole-stack behaviour
(daphne, engine, a ``websockets`` client) is in tests/test_realtime_stack.py.
"""

from __future__ import annotations

import json
import time

import pytest
import pytest_asyncio
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.db import connections

from accounts.services import api_key_create
from exchange_site.asgi import application
from marketdata import consumers, streams
from marketdata.broadcast import publish, stream_messages
from tests.factories import UserFactory
from tests.signing import signed_headers

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.asyncio]


@pytest_asyncio.fixture(autouse=True)
async def _close_consumer_db_connections():
    """The consumer reads the database in Channels' worker thread; close that connection after each test."""
    yield
    await sync_to_async(connections.close_all)()


HANDSHAKE_TIMEOUT_S = 5


async def connect(headers: list[tuple[bytes, bytes]] | None = None, path: str = "/ws") -> WebsocketCommunicator:
    communicator = WebsocketCommunicator(application, path, headers=headers or [])
    # The handshake joins groups on the real Redis channel layer: allow a busy CI machine a few seconds
    # (a 1 s default once expired mid-handshake, and the consumer left behind stalled the test run).
    connected, _ = await communicator.connect(timeout=HANDSHAKE_TIMEOUT_S)
    assert connected
    return communicator


async def ask(communicator: WebsocketCommunicator, message) -> dict:
    await communicator.send_to(text_data=message if isinstance(message, str) else json.dumps(message))
    return json.loads(await communicator.receive_from())


async def publish_frame(group: str, stream: str, data) -> None:
    await sync_to_async(publish)([stream_messages(group, stream, data)])


async def test_subscribe_list_unsubscribe_and_receive_frames(market):
    ws = await connect()
    reply = await ask(ws, {"method": "SUBSCRIBE", "params": ["depth@BTC_USDT", "trades@BTC_USDT"], "id": 1})
    assert reply == {"result": None, "id": 1}
    assert await ask(ws, {"method": "LIST_SUBSCRIPTIONS", "id": "x"}) == {
        "result": ["depth@BTC_USDT", "trades@BTC_USDT"],
        "id": "x",
    }
    await publish_frame(streams.public_group("trades", "BTC_USDT"), "trades@BTC_USDT", {"t": 1})
    assert json.loads(await ws.receive_from(timeout=2)) == {"stream": "trades@BTC_USDT", "data": {"t": 1}}
    assert await ask(ws, {"method": "UNSUBSCRIBE", "params": ["trades@BTC_USDT"], "id": 2}) == {"result": None, "id": 2}
    await publish_frame(streams.public_group("trades", "BTC_USDT"), "trades@BTC_USDT", {"t": 2})
    await publish_frame(streams.public_group("depth", "BTC_USDT"), "depth@BTC_USDT", {"u": 9})
    assert json.loads(await ws.receive_from(timeout=2)) == {"stream": "depth@BTC_USDT", "data": {"u": 9}}
    assert await ws.receive_nothing(timeout=0.2)
    await ws.disconnect()


@pytest.mark.parametrize(
    ("message", "code"),
    [
        ("{not json", "invalid_json"),
        ("[1, 2]", "invalid_request"),
        ({"method": "PING", "id": 3}, "unknown_method"),
        ({"method": "SUBSCRIBE", "params": "depth@BTC_USDT", "id": 3}, "invalid_params"),
        ({"method": "SUBSCRIBE", "params": [], "id": 3}, "invalid_params"),
        ({"method": "SUBSCRIBE", "params": ["depth@BTC_USDT", 7], "id": 3}, "invalid_params"),
        ({"method": "SUBSCRIBE", "params": ["candles@BTC_USDT"], "id": 3}, "unknown_stream"),
        ({"method": "SUBSCRIBE", "params": ["depth@btcusdt"], "id": 3}, "unknown_stream"),
        ({"method": "SUBSCRIBE", "params": ["depth@DOGE_USDT"], "id": 3}, "unknown_market"),
        ({"method": "SUBSCRIBE", "params": ["orders"], "id": 3}, "unauthenticated"),
    ],
)
async def test_bad_messages_get_an_error_frame_and_change_nothing(market, message, code):
    ws = await connect()
    reply = await ask(ws, message)
    assert reply["error"]["code"] == code and reply["error"]["msg"]
    assert reply["id"] == (3 if isinstance(message, dict) else None)
    assert await ask(ws, {"method": "LIST_SUBSCRIPTIONS", "id": 4}) == {"result": [], "id": 4}
    await ws.disconnect()


async def test_binary_frames_are_refused(market):
    ws = await connect()
    await ws.send_to(bytes_data=b"\x00\x01")
    assert json.loads(await ws.receive_from())["error"]["code"] == "text_only"
    await ws.disconnect()


async def test_an_oversized_frame_closes_the_connection_with_4009(market):
    ws = await connect()
    await ws.send_to(text_data=json.dumps({"method": "SUBSCRIBE", "params": ["x" * 5000], "id": 1}))
    assert json.loads(await ws.receive_from())["error"]["code"] == "frame_too_big"
    assert (await ws.receive_output())["code"] == consumers.CLOSE_TOO_BIG


async def test_flooding_is_rate_limited_then_closed_with_4008(market):
    ws = await connect()
    codes = []
    for i in range(consumers.MESSAGES_PER_SECOND + consumers.MAX_ERRORS + 5):
        await ws.send_to(text_data=json.dumps({"method": "LIST_SUBSCRIPTIONS", "id": i}))
    while True:
        output = await ws.receive_output(timeout=2)
        if output["type"] == "websocket.close":
            assert output["code"] == consumers.CLOSE_POLICY
            break
        reply = json.loads(output["text"])
        codes.append(reply["error"]["code"] if "error" in reply else "ok")
    assert codes[: consumers.MESSAGES_PER_SECOND] == ["ok"] * consumers.MESSAGES_PER_SECOND
    assert set(codes[consumers.MESSAGES_PER_SECOND :]) == {"rate_limited", "too_many_errors"}


async def test_too_many_subscriptions_are_refused_whole(market, monkeypatch):
    monkeypatch.setattr(consumers, "MAX_SUBSCRIPTIONS", 2)
    ws = await connect()
    assert (await ask(ws, {"method": "SUBSCRIBE", "params": ["depth@BTC_USDT"], "id": 1}))["result"] is None
    reply = await ask(ws, {"method": "SUBSCRIBE", "params": ["trades@BTC_USDT", "ticker@BTC_USDT"], "id": 2})
    assert reply["error"]["code"] == "too_many_subscriptions"
    assert (await ask(ws, {"method": "LIST_SUBSCRIPTIONS", "id": 3}))["result"] == ["depth@BTC_USDT"]
    await ws.disconnect()


def api_key_headers(user, path: str = "/ws", scopes=("read", "trade"), **overrides) -> list[tuple[bytes, bytes]]:
    key, secret = api_key_create(user=user, label="ws", scopes=scopes)
    headers = signed_headers(key=key.key, secret=secret, method="GET", path=path, **overrides)
    return [(name[5:].replace("_", "-").lower().encode(), value.encode()) for name, value in headers.items()]


async def test_private_events_reach_only_their_owner(market):
    alice, bob = await sync_to_async(UserFactory)(), await sync_to_async(UserFactory)()
    alice_ws = await connect(await sync_to_async(api_key_headers)(alice))
    bob_ws = await connect(await sync_to_async(api_key_headers)(bob))
    for ws in (alice_ws, bob_ws):
        reply = await ask(ws, {"method": "SUBSCRIBE", "params": ["orders", "fills", "balances"], "id": 1})
        assert reply == {"result": None, "id": 1}
    await publish_frame(streams.user_group(alice.id), "orders", {"id": 1, "owner": "alice"})
    await publish_frame(streams.user_group(bob.id), "fills", {"id": 2, "owner": "bob"})
    assert json.loads(await alice_ws.receive_from(timeout=2))["data"]["owner"] == "alice"
    assert json.loads(await bob_ws.receive_from(timeout=2))["data"]["owner"] == "bob"
    assert await alice_ws.receive_nothing(timeout=0.2)
    assert await bob_ws.receive_nothing(timeout=0.2)
    await alice_ws.disconnect()
    await bob_ws.disconnect()


async def test_a_bad_signature_closes_with_4401(market):
    user = await sync_to_async(UserFactory)()
    headers = await sync_to_async(api_key_headers)(user, path="/elsewhere")
    ws = await connect(headers)
    reply = json.loads(await ws.receive_from())
    assert reply["error"]["code"] == "authentication_failed"
    assert "signature" in reply["error"]["msg"]
    assert (await ws.receive_output())["code"] == consumers.CLOSE_UNAUTHENTICATED


async def test_a_key_without_the_read_scope_gets_no_private_stream(market):
    """Orders, fills and balances are reading: a trade-only key is refused at the handshake, as on REST."""
    user = await sync_to_async(UserFactory)()
    ws = await connect(await sync_to_async(api_key_headers)(user, scopes=("trade",)))
    reply = json.loads(await ws.receive_from())
    assert reply["error"]["code"] == "authentication_failed" and "read scope" in reply["error"]["msg"]
    assert (await ws.receive_output())["code"] == consumers.CLOSE_UNAUTHENTICATED


async def test_a_foreign_origin_is_refused_and_no_origin_ignores_cookies(market, client):
    user = await sync_to_async(UserFactory)()
    await sync_to_async(client.force_login)(user)
    cookie = f"sessionid={client.cookies['sessionid'].value}".encode()

    foreign = WebsocketCommunicator(
        application, "/ws", headers=[(b"origin", b"https://evil.example"), (b"cookie", cookie)]
    )
    connected, _ = await foreign.connect()
    assert not connected

    own = await connect([(b"origin", b"http://localhost"), (b"host", b"localhost"), (b"cookie", cookie)])
    assert (await ask(own, {"method": "SUBSCRIBE", "params": ["orders"], "id": 1}))["result"] is None
    await own.disconnect()

    bot = await connect([(b"cookie", cookie)])  # no Origin: not a browser, so the cookie does not count
    assert (await ask(bot, {"method": "SUBSCRIBE", "params": ["orders"], "id": 1}))["error"][
        "code"
    ] == "unauthenticated"
    await bot.disconnect()


async def test_a_client_too_far_behind_is_closed_instead_of_buffered(market):
    ws = await connect()
    assert (await ask(ws, {"method": "SUBSCRIBE", "params": ["trades@BTC_USDT"], "id": 1}))["result"] is None
    stale = {**streams.group_message("trades@BTC_USDT", '{"t":1}'), "at": time.time() - consumers.MAX_LAG_S - 1}
    await sync_to_async(publish)([(streams.public_group("trades", "BTC_USDT"), stale)])
    assert json.loads(await ws.receive_from(timeout=2))["error"]["code"] == "too_slow"
    assert (await ws.receive_output(timeout=2))["code"] == consumers.CLOSE_POLICY
