"""Binance's WebSockets: market streams (``/binance/ws``, ``/binance/stream``) and its WebSocket API.

The WebSocket API is at ``/binance/ws-api/v3``.

Market streams, as on ``stream.binance.com``:

- ``/binance/ws`` and ``/binance/ws/<stream>[/<stream>...]``: raw payloads;
  ``/binance/stream?streams=<a>/<b>``: ``{"stream": name, "data": payload}``.
- ``SUBSCRIBE`` / ``UNSUBSCRIBE`` / ``LIST_SUBSCRIPTIONS`` / ``SET_PROPERTY`` /
  ``GET_PROPERTY`` (``combined``), answered ``{"result": ..., "id": N}``.
- A name in the path that is no stream (CCXT opens ``/ws/0``) is ignored; a
  listen key there (``/ws/<listenKey>``) opens that user's data stream.

The consumer joins our Channels groups (``marketdata.streams``) and turns our
frames into Binance's (``compat.marketstreams``: once per frame per process).

The WebSocket API carries the user data stream current clients use:
``userDataStream.subscribe.signature`` (HMAC over the sorted params) answers
``{"id", "status": 200, "result": {"subscriptionId": 0}}`` and then sends
``{"subscriptionId": 0, "event": {...}}`` for each of the user's events
(``compat.userdata``).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer

from compat import marketstreams, selectors
from compat import services as compat_services
from compat.errors import BinanceError
from compat.marketstreams import StreamName, parse_stream_name
from compat.signing import invalid_key, key_only, verify, ws_api_payload
from compat.symbols import index
from compat.userdata import UserEventTranslator
from exchange_site.client_ip import IPAddress, client_ip_from
from marketdata import streams

logger = logging.getLogger(__name__)

MAX_FRAME_BYTES = 4096
MAX_STREAMS = 1024  # Binance's limit per connection
MESSAGES_PER_SECOND = 10
PRIVATE = frozenset(streams.PRIVATE_STREAMS)
TICK_S = 0.1
LISTEN_KEY_CHECK_S = 30.0
CLOSE_TOO_BIG = 4009  # daphne refuses 1009 from an application (marketdata.consumers)


class StreamError(Exception):
    """A bad request on a market stream connection: Binance's ``{"error": {"code", "msg"}, "id"}``."""

    def __init__(self, code: int, msg: str) -> None:
        super().__init__(msg)
        self.code, self.msg = code, msg


@dataclass(slots=True)
class Subscription:
    stream: StreamName
    market: str  # our market symbol
    name_json: str  # the name as JSON text, for combined frames
    dirty: bool = True  # partial books: a change not pushed yet
    next_push: float = 0.0


@dataclass(slots=True)
class UserStream:
    """One user's private events on this connection, translated for Binance."""

    user_id: int
    translator: UserEventTranslator = field(default_factory=UserEventTranslator)


@database_sync_to_async
def _market_of(symbol: str) -> str | None:
    return index.ours(symbol)


@database_sync_to_async
def _binance_symbol(market: str) -> str | None:
    return index.binance(market)


@database_sync_to_async
def _listen_key_owner(listen_key: str) -> int | None:
    return selectors.listen_key_user_id(listen_key)


async def translate_user_frame(user: UserStream, source: str, text: str) -> list[dict[str, Any]]:
    """Binance's user data events for one of our private frames (the symbol looked up when new)."""
    data = json.loads(text)["data"]
    market = data.get("market")
    symbol = ""
    if market is not None:
        symbol = index.known_binance(market) or await _binance_symbol(market) or market
    return user.translator.translate(source, data, symbol=symbol)


class RateLimited:
    """A token bucket of ``MESSAGES_PER_SECOND`` incoming messages."""

    def __init__(self) -> None:
        self.tokens = float(MESSAGES_PER_SECOND)
        self.refilled_at = time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(float(MESSAGES_PER_SECOND), self.tokens + (now - self.refilled_at) * MESSAGES_PER_SECOND)
        self.refilled_at = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True


class MarketStreamConsumer(AsyncWebsocketConsumer):
    """``/binance/ws[/...]`` (raw) and ``/binance/stream`` (combined) market streams, and listen-key user data."""

    async def connect(self) -> None:
        kwargs = self.scope["url_route"]["kwargs"]
        self.combined: bool = kwargs.get("combined", False)
        self.subscriptions: dict[str, Subscription] = {}
        self.by_source: dict[str, list[Subscription]] = {}
        self.last_book: dict[tuple[str, str], tuple] = {}
        self.depth_ids: dict[str, int] = {}
        self.user: UserStream | None = None
        self.listen_key: str | None = None
        self.listen_key_checked = time.monotonic()
        self.limiter = RateLimited()
        self.timer: asyncio.Task | None = None
        names = kwargs.get("names", "")
        if self.combined:
            names = parse_qs(self.scope.get("query_string", b"").decode("latin-1")).get("streams", [""])[0]
        for name in filter(None, names.split("/")):
            if self.user is None and (owner := await _listen_key_owner(name)) is not None:
                await self._open_user_stream(name, owner)
                continue
            try:
                await self._subscribe([name])
            except StreamError:
                continue  # Binance ignores such a name (CCXT connects to /ws/0 and subscribes later)
        # Accepted once the streams of the URL are joined: from the handshake on, nothing is missed.
        await self.accept()

    async def disconnect(self, code: int) -> None:
        if self.timer is not None:
            self.timer.cancel()
        groups = {streams.public_group(*source.split("@", 1)) for source in self.by_source}
        if self.user is not None:
            groups.add(streams.user_group(self.user.user_id))
        for group in groups:
            await self.channel_layer.group_discard(group, self.channel_name)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if text_data is None or len(text_data) > MAX_FRAME_BYTES:
            await self.close(code=CLOSE_TOO_BIG)
            return
        request_id = None
        try:
            if not self.limiter.take():
                raise StreamError(2, f"Invalid request: too many messages; the limit is {MESSAGES_PER_SECOND} a second")
            try:
                message = json.loads(text_data)
            except ValueError as error:
                raise StreamError(3, f"Invalid JSON: {error}") from None
            if not isinstance(message, dict):
                raise StreamError(3, "Invalid JSON: expected an object")
            request_id = message.get("id")
            result = await self._handle(message)
        except StreamError as error:
            await self.send(text_data=json.dumps({"error": {"code": error.code, "msg": error.msg}, "id": request_id}))
            return
        await self.send(text_data=json.dumps({"result": result, "id": request_id}))

    async def _handle(self, message: dict[str, Any]) -> Any:
        method, params = message.get("method"), message.get("params", [])
        if not isinstance(message.get("id"), int) or isinstance(message.get("id"), bool) or message["id"] < 0:
            raise StreamError(2, "Invalid request: request ID must be an unsigned integer")
        if method == "LIST_SUBSCRIPTIONS":
            return list(self.subscriptions)
        if not isinstance(params, list):
            raise StreamError(2, "Invalid request: params must be an array")
        if method in ("SUBSCRIBE", "UNSUBSCRIBE"):
            if not params or not all(isinstance(name, str) for name in params):
                raise StreamError(2, "Invalid request: params must be an array of stream names")
            if method == "SUBSCRIBE":
                await self._subscribe(params)
            else:
                await self._unsubscribe(params)
            return None
        if method == "SET_PROPERTY":
            if len(params) != 2 or params[0] != "combined":
                raise StreamError(0, "Unknown property")
            if not isinstance(params[1], bool):
                raise StreamError(1, "Invalid value type: expected Boolean")
            self.combined = params[1]
            return None
        if method == "GET_PROPERTY":
            if params != ["combined"]:
                raise StreamError(0, "Unknown property")
            return self.combined
        raise StreamError(
            2,
            f"Invalid request: unknown variant {method!r}, expected one of SUBSCRIBE, UNSUBSCRIBE, "
            "LIST_SUBSCRIPTIONS, SET_PROPERTY, GET_PROPERTY",
        )

    async def _subscribe(self, names: list[str]) -> None:
        new: list[Subscription] = []
        for name in dict.fromkeys(names):
            if name in self.subscriptions:
                continue
            parsed = parse_stream_name(name)
            market = await _market_of(parsed.symbol) if parsed is not None else None
            if parsed is None or market is None:
                raise StreamError(2, f"Invalid request: invalid stream {name!r}")
            new.append(Subscription(parsed, market, json.dumps(name)))
        if len(self.subscriptions) + len(new) > MAX_STREAMS:
            raise StreamError(2, f"Invalid request: at most {MAX_STREAMS} streams per connection")
        for subscription in new:
            source = streams.public_stream(subscription.stream.source_kind, subscription.market)
            if source not in self.by_source:
                self.by_source[source] = []
                await self.channel_layer.group_add(
                    streams.public_group(subscription.stream.source_kind, subscription.market), self.channel_name
                )
            self.by_source[source].append(subscription)
            self.subscriptions[subscription.stream.name] = subscription
            if subscription.stream.kind == "partialDepth":
                self._start_timer()

    async def _unsubscribe(self, names: list[str]) -> None:
        for name in names:
            subscription = self.subscriptions.pop(name, None)
            if subscription is None:
                continue
            source = streams.public_stream(subscription.stream.source_kind, subscription.market)
            remaining = [s for s in self.by_source[source] if s is not subscription]
            if remaining:
                self.by_source[source] = remaining
            else:
                del self.by_source[source]
                await self.channel_layer.group_discard(
                    streams.public_group(subscription.stream.source_kind, subscription.market), self.channel_name
                )

    async def _open_user_stream(self, listen_key: str, user_id: int) -> None:
        self.user = UserStream(user_id)
        self.listen_key = listen_key
        await self.channel_layer.group_add(streams.user_group(user_id), self.channel_name)
        self._start_timer()

    # --- frames from our groups -------------------------------------------------------------

    async def stream_message(self, event: dict[str, Any]) -> None:
        source, text = event["stream"], event["text"]
        if source in PRIVATE:
            if self.user is not None:
                for payload in await translate_user_frame(self.user, source, text):
                    await self._send(self.listen_key, json.dumps(payload, separators=(",", ":")))
            return
        for subscription in self.by_source.get(source, ()):
            await self._deliver(subscription, text)

    async def _deliver(self, subscription: Subscription, text: str) -> None:
        stream = subscription.stream
        kind = stream.kind
        if kind == "ticker":
            payload = await marketstreams.ticker_text(stream.symbol, subscription.market, text)
        elif kind in ("bookTicker", "partialDepth"):
            update_id = marketstreams.depth_update_id(text)
            self.depth_ids[subscription.market] = update_id
            if kind == "partialDepth":
                subscription.dirty = True  # pushed by the timer, at the stream's rate
                return
            top = await marketstreams.book_top(subscription.market, update_id, 1)
            best = marketstreams.book_ticker_payload(top, stream.symbol)
            key = (best["b"], best["B"], best["a"], best["A"])
            if self.last_book.get((stream.name, "")) == key:
                return
            self.last_book[(stream.name, "")] = key
            payload = json.dumps(best, separators=(",", ":"))
        else:
            payload = marketstreams.payload_text(kind, stream.symbol, text)
        await self._send(stream.name, payload, subscription.name_json)

    async def _send(self, name: str | None, payload: str, name_json: str | None = None) -> None:
        if self.combined:
            await self.send(text_data=f'{{"stream":{name_json or json.dumps(name)},"data":{payload}}}')
        else:
            await self.send(text_data=payload)

    # --- the timer: partial books at their rate, listen key expiry ------------------------------

    def _start_timer(self) -> None:
        if self.timer is None:
            self.timer = asyncio.ensure_future(self._tick())

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(TICK_S)
            try:
                await self._push_partial_books()
                await self._check_listen_key()
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("binance stream timer failed")

    async def _push_partial_books(self) -> None:
        now = time.monotonic()
        for subscription in list(self.subscriptions.values()):
            stream = subscription.stream
            if stream.kind != "partialDepth" or not subscription.dirty or now < subscription.next_push:
                continue
            subscription.dirty = False
            subscription.next_push = now + stream.interval_ms / 1000
            update_id = self.depth_ids.get(subscription.market)
            if update_id is None:  # nothing seen yet on this connection: read the book as it is now
                top = await marketstreams.current_book(subscription.market, stream.levels)
            else:
                top = await marketstreams.book_top(subscription.market, update_id, stream.levels)
            payload = {"lastUpdateId": top["lastUpdateId"], "bids": top["bids"], "asks": top["asks"]}
            await self._send(stream.name, json.dumps(payload, separators=(",", ":")), subscription.name_json)

    async def _check_listen_key(self) -> None:
        if self.user is None or time.monotonic() - self.listen_key_checked < LISTEN_KEY_CHECK_S:
            return
        self.listen_key_checked = time.monotonic()
        if await _listen_key_owner(self.listen_key) == self.user.user_id:
            return
        await self.channel_layer.group_discard(streams.user_group(self.user.user_id), self.channel_name)
        self.user = None
        expired = {"e": "listenKeyExpired", "E": int(time.time() * 1000), "listenKey": self.listen_key}
        await self._send(self.listen_key, json.dumps(expired))


class WsApiConsumer(AsyncWebsocketConsumer):
    """``/binance/ws-api/v3``: the user data stream methods of Binance's WebSocket API, plus ``ping`` and ``time``."""

    async def connect(self) -> None:
        self.user: UserStream | None = None
        self.subscription_id = -1
        self.next_subscription_id = 0
        self.limiter = RateLimited()
        await self.accept()

    async def disconnect(self, code: int) -> None:
        if self.user is not None:
            await self.channel_layer.group_discard(streams.user_group(self.user.user_id), self.channel_name)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if text_data is None or len(text_data) > MAX_FRAME_BYTES:
            await self.close(code=CLOSE_TOO_BIG)
            return
        request_id = None
        try:
            if not self.limiter.take():
                raise BinanceError(
                    -1003, f"Too many requests; the limit is {MESSAGES_PER_SECOND} a second.", status=429
                )
            try:
                message = json.loads(text_data)
            except ValueError:
                raise BinanceError(-1100, "Malformed request: the message is not valid JSON.") from None
            if not isinstance(message, dict):
                raise BinanceError(-1100, "Malformed request: expected a JSON object.")
            request_id = message.get("id")
            params = message.get("params", {})
            if not isinstance(params, dict) or not all(isinstance(v, (str, int)) for v in params.values()):
                raise BinanceError(-1135, "Invalid 'params' in JSON request; expected an object.")
            result = await self._handle(str(message.get("method")), {k: str(v) for k, v in params.items()})
        except BinanceError as error:
            reply = {"id": request_id, "status": error.status_code, "error": error.body()}
            await self.send(text_data=json.dumps(reply))
            return
        await self.send(text_data=json.dumps({"id": request_id, "status": 200, "result": result}))

    async def _handle(self, method: str, params: dict[str, str]) -> Any:
        if method == "ping":
            return {}
        if method == "time":
            return {"serverTime": int(time.time() * 1000)}
        if method == "userDataStream.subscribe.signature":
            return await self._subscribe(params)
        if method == "userDataStream.unsubscribe":
            wanted = params.get("subscriptionId")
            if self.user is None or (wanted is not None and wanted != str(self.subscription_id)):
                raise BinanceError(-2036, "User Data Stream subscription not active.")
            await self.channel_layer.group_discard(streams.user_group(self.user.user_id), self.channel_name)
            self.user = None
            return {}
        if method == "session.subscriptions":
            return [{"subscriptionId": self.subscription_id}] if self.user is not None else []
        if method in ("userDataStream.start", "userDataStream.ping", "userDataStream.stop"):
            return await self._listen_key(method, params)
        raise BinanceError(-1020, f"Unsupported method {method!r}: see docs/binance-compat.md for what is served.")

    def _client_ip(self) -> IPAddress | None:
        """The client's address for API-key allowlists, read as ``exchange_site.client_ip`` reads HTTP requests."""
        headers = dict(self.scope.get("headers", []))
        forwarded = headers.get(b"x-forwarded-for", b"").decode("latin-1")
        client = self.scope.get("client")
        return client_ip_from(remote_addr=client[0] if client else "", forwarded_for=forwarded)

    async def _subscribe(self, params: dict[str, str]) -> dict[str, int]:
        if self.user is not None:
            raise BinanceError(-2035, "User Data Stream subscription already active.")
        key = params.get("apiKey")
        if not key:
            raise BinanceError(-1102, "Mandatory parameter 'apiKey' was not sent, was empty/null, or malformed.")
        user, api_key = await database_sync_to_async(verify)(
            key=key,
            params=params,
            payload=ws_api_payload(params),
            signature=params.get("signature"),
            ip=self._client_ip(),
        )
        if not api_key.has_scope("read"):
            raise invalid_key()
        self.user = UserStream(user.pk)
        self.subscription_id = self.next_subscription_id
        self.next_subscription_id += 1
        await self.channel_layer.group_add(streams.user_group(user.pk), self.channel_name)
        return {"subscriptionId": self.subscription_id}

    async def _listen_key(self, method: str, params: dict[str, str]) -> dict[str, str]:
        user, api_key = await database_sync_to_async(key_only)(params.get("apiKey"), ip=self._client_ip())
        if not api_key.has_scope("read"):
            raise invalid_key()
        if method == "userDataStream.start":
            return {"listenKey": await database_sync_to_async(compat_services.listen_key_create)(user=user)}
        listen_key = params.get("listenKey")
        if not listen_key:
            raise BinanceError(-1102, "Mandatory parameter 'listenKey' was not sent, was empty/null, or malformed.")
        change = (
            compat_services.listen_key_keepalive
            if method == "userDataStream.ping"
            else compat_services.listen_key_close
        )
        await database_sync_to_async(change)(user=user, listen_key=listen_key)
        return {}

    async def stream_message(self, event: dict[str, Any]) -> None:
        if self.user is None or event["stream"] not in PRIVATE:
            return
        for payload in await translate_user_frame(self.user, event["stream"], event["text"]):
            await self.send(
                text_data=json.dumps({"subscriptionId": self.subscription_id, "event": payload}, separators=(",", ":"))
            )
