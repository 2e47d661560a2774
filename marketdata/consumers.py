"""The WebSocket endpoint ``/ws``: subscribe to public market streams and, once authenticated, private ones.

Protocol (docs/realtime.md): ``SUBSCRIBE`` / ``UNSUBSCRIBE`` /
``LIST_SUBSCRIPTIONS`` with an ``id`` echoed in the reply; frames arrive as
``{"stream", "data"}``.  The consumer only turns group messages into frames:
the engine (through ``marketdata.broadcast``) serializes each frame once and
this consumer forwards the text unchanged.

Hostile input never reaches beyond this connection: every bad message gets
an error frame, and a connection that keeps misbehaving, floods, or sends an
oversized frame is closed with a policy code.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

from autobahn.exception import Disconnected
from channels.db import database_sync_to_async
from channels.exceptions import StopConsumer
from channels.generic.websocket import AsyncWebsocketConsumer
from rest_framework import exceptions

from accounts.authentication import verify_signed_request
from accounts.models import ApiScope
from exchange_site.client_ip import client_ip_from
from exchange_site.errors import ApplicationError
from marketdata import streams
from markets.selectors import market_get

logger = logging.getLogger(__name__)

MAX_FRAME_BYTES = 4096
MAX_SUBSCRIPTIONS = 100
MESSAGES_PER_SECOND = 10
MAX_ERRORS = 20
MAX_LAG_S = 5.0
CLOSE_GONE = 1006
# daphne (autobahn) lets an application close only with 1000 or 3000-4999: the
# standard codes for a policy violation (1008) and a frame too big (1009) are
# sent as 4000 + that code.
CLOSE_POLICY = 4008
CLOSE_TOO_BIG = 4009
CLOSE_UNAUTHENTICATED = 4401


class ClientError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@database_sync_to_async
def _authenticate_api_key(headers: dict[str, str], path: str, client: tuple | None):
    forwarded = headers.get("x-forwarded-for", "")
    ip = client_ip_from(remote_addr=client[0] if client else "", forwarded_for=forwarded)
    user, api_key = verify_signed_request(
        key=headers["x-api-key"],
        timestamp=headers.get("x-timestamp", ""),
        recv_window=headers.get("x-recv-window", ""),
        signature=headers.get("x-signature", ""),
        method="GET",
        path=path,
        body=b"",
        ip=ip,
    )
    # The private streams show orders, fills and balances: reading, as on the REST API.
    if not api_key.has_scope(ApiScope.READ):
        raise exceptions.AuthenticationFailed("This API key lacks the read scope the private streams need.")
    return user


@database_sync_to_async
def _market_exists(symbol: str) -> bool:
    try:
        market_get(symbol=symbol)
    except ApplicationError:
        return False
    return True


class StreamConsumer(AsyncWebsocketConsumer):
    """One client connection: its subscriptions, its user (if any) and its budget of messages and errors."""

    async def connect(self) -> None:
        self.subscriptions: set[str] = set()
        self.user_id: int | None = None
        self.closing = False
        self.errors = 0
        self.tokens = float(MESSAGES_PER_SECOND)
        self.refilled_at = time.monotonic()
        headers = {name.decode("latin-1").lower(): value.decode("latin-1") for name, value in self.scope["headers"]}
        await self.accept()
        if "x-api-key" in headers:
            query = self.scope.get("query_string", b"").decode("latin-1")
            path = self.scope["path"] + (f"?{query}" if query else "")
            try:
                user = await _authenticate_api_key(headers, path, self.scope.get("client"))
            except exceptions.AuthenticationFailed as error:
                await self._send_error(None, "authentication_failed", str(error.detail))
                await self.close(code=CLOSE_UNAUTHENTICATED)
                return
            self.user_id = user.id
        else:
            user = self.scope.get("user")
            if user is not None and user.is_authenticated:
                self.user_id = user.id

    async def disconnect(self, code: int) -> None:
        for group in self._groups(self.subscriptions):
            await self.channel_layer.group_discard(group, self.channel_name)
        self.subscriptions = set()

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        if text_data is None or len(text_data.encode()) > MAX_FRAME_BYTES:
            if text_data is None:
                await self._fail(None, "text_only", "Send JSON text frames; binary frames are not accepted.")
            else:
                await self._send_error(None, "frame_too_big", f"Frames are limited to {MAX_FRAME_BYTES} bytes.")
                await self.close(code=CLOSE_TOO_BIG)
            return
        if not self._take_token():
            await self._fail(None, "rate_limited", f"At most {MESSAGES_PER_SECOND} messages per second.")
            return
        try:
            message = json.loads(text_data)
        except ValueError:
            await self._fail(None, "invalid_json", "The frame is not valid JSON.")
            return
        request_id = message.get("id") if isinstance(message, dict) else None
        if not isinstance(request_id, (int, str, type(None))) or isinstance(request_id, bool):
            request_id = None
        try:
            result = await self._handle(message)
        except ClientError as error:
            await self._fail(request_id, error.code, error.message)
            return
        await self.send(text_data=json.dumps({"result": result, "id": request_id}))

    async def dispatch(self, message: dict[str, Any]) -> None:
        """Frames skip Channels' generic dispatch.

        ``AsyncConsumer.dispatch`` runs ``close_old_connections()`` on the sync
        thread before every handler: for a frame that is a thread round trip
        that never touches the database, measured at about half of daphne's CPU
        per frame (bench/ws_fanout.py).  This consumer reaches the database only
        through ``database_sync_to_async``, which closes stale connections itself.
        """
        if message["type"] == streams.MESSAGE_TYPE:
            await self.stream_message(message)
            return
        await super().dispatch(message)

    async def stream_message(self, event: dict[str, Any]) -> None:
        """A frame published to a group this connection joined; forwarded as is.

        A client that lags more than ``MAX_LAG_S`` behind the publisher is
        closed rather than buffered without bound: it resyncs from the REST
        snapshot when it reconnects.  A client gone mid-send ends the consumer
        cleanly, leaving its groups.
        """
        if event["stream"] not in self.subscriptions or self.closing:
            return
        try:
            if time.time() - event.get("at", time.time()) > MAX_LAG_S:
                self.closing = True
                await self._send_error(None, "too_slow", f"More than {MAX_LAG_S:g} s behind; resync and reconnect.")
                await self.close(code=CLOSE_POLICY)
                return
            await self.send(text_data=event["text"])
        except Disconnected:
            await self.disconnect(CLOSE_GONE)
            raise StopConsumer() from None

    # --- requests ----------------------------------------------------------------------

    async def _handle(self, message: Any) -> Any:
        if not isinstance(message, dict) or not isinstance(message.get("method"), str):
            raise ClientError("invalid_request", 'Send {"method": "SUBSCRIBE", "params": ["depth@BTC_USDT"], "id": 1}.')
        method = message["method"].upper()
        if method == "LIST_SUBSCRIPTIONS":
            return sorted(self.subscriptions)
        if method not in ("SUBSCRIBE", "UNSUBSCRIBE"):
            known = "SUBSCRIBE, UNSUBSCRIBE or LIST_SUBSCRIPTIONS"
            raise ClientError("unknown_method", f"Unknown method {message['method']!r}; use {known}.")
        params = message.get("params")
        if not isinstance(params, list) or not params or not all(isinstance(name, str) for name in params):
            raise ClientError("invalid_params", "params must be a non-empty list of stream names.")
        names = set(params)
        if method == "UNSUBSCRIBE":
            await self._unsubscribe(names & self.subscriptions)
            return None
        for name in sorted(names):
            await self._check_stream(name)
        new = names - self.subscriptions
        if len(self.subscriptions) + len(new) > MAX_SUBSCRIPTIONS:
            raise ClientError("too_many_subscriptions", f"At most {MAX_SUBSCRIPTIONS} subscriptions per connection.")
        for group in self._groups(new) - self._groups(self.subscriptions):
            await self.channel_layer.group_add(group, self.channel_name)
        self.subscriptions |= new
        return None

    async def _check_stream(self, name: str) -> None:
        if name in streams.PRIVATE_STREAMS:
            if self.user_id is None:
                raise ClientError(
                    "unauthenticated",
                    f"{name!r} is private: log in (session) or connect with a signed API key to subscribe.",
                )
            return
        parsed = streams.parse_public_stream(name)
        if parsed is None:
            kinds = ", ".join(streams.PUBLIC_KINDS)
            raise ClientError(
                "unknown_stream", f"Unknown stream {name!r}; public streams are <kind>@<MARKET> with kind in {kinds}."
            )
        if not await _market_exists(parsed[1]):
            raise ClientError("unknown_market", f"There is no market {parsed[1]!r}.")

    async def _unsubscribe(self, names: set[str]) -> None:
        remaining = self.subscriptions - names
        for group in self._groups(names) - self._groups(remaining):
            await self.channel_layer.group_discard(group, self.channel_name)
        self.subscriptions = remaining

    def _groups(self, names: set[str]) -> set[str]:
        groups = set()
        for name in names:
            if name in streams.PRIVATE_STREAMS:
                groups.add(streams.user_group(self.user_id))
            else:
                kind, symbol = streams.parse_public_stream(name)
                groups.add(streams.public_group(kind, symbol))
        return groups

    # --- limits and errors -------------------------------------------------------------

    def _take_token(self) -> bool:
        now = time.monotonic()
        self.tokens = min(float(MESSAGES_PER_SECOND), self.tokens + (now - self.refilled_at) * MESSAGES_PER_SECOND)
        self.refilled_at = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True

    async def _fail(self, request_id: Any, code: str, message: str) -> None:
        self.errors += 1
        if self.errors >= MAX_ERRORS:
            await self._send_error(request_id, "too_many_errors", f"Closed after {MAX_ERRORS} bad messages.")
            await self.close(code=CLOSE_POLICY)
            return
        await self._send_error(request_id, code, message)

    async def _send_error(self, request_id: Any, code: str, message: str) -> None:
        await self.send(text_data=json.dumps({"error": {"code": code, "msg": message}, "id": request_id}))
