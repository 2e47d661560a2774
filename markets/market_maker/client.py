"""The exchange as the market maker sees it: signed REST calls over httpx, and WebSocket handshake headers.

It signs as any outside bot must (README, "Trading through the API"):
``hex(HMAC-SHA256(secret, "{timestamp}\\n{recv_window}\\n{METHOD}\\n{path?query}\\n{body}"))``.
The server refuses a signature it has seen before, so timestamps are kept
strictly increasing: two identical requests in one millisecond still differ.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlencode, urlsplit

import httpx

logger = logging.getLogger(__name__)

RECV_WINDOW_MS = 5000
BATCH_LIMIT = 20  # orders per POST /orders/batch and ids per /orders/cancel-batch


class ExchangeUnavailable(Exception):
    """The exchange did not answer, or answered with a server error: retry later."""


class ApiError(Exception):
    """The exchange refused a request (4xx): ``code`` is its stable error code."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status, self.code, self.message = status, code, message


def signature(secret: str, *, timestamp: str, recv_window: str, method: str, path: str, body: bytes) -> str:
    text = f"{timestamp}\n{recv_window}\n{method.upper()}\n{path}\n".encode() + body
    return hmac.new(secret.encode(), text, hashlib.sha256).hexdigest()


class Signer:
    def __init__(self, key: str, secret: str, *, clock=time.time) -> None:
        self.key, self._secret, self._clock = key, secret, clock
        self._last_ms = 0

    def headers(self, method: str, path: str, body: bytes = b"") -> dict[str, str]:
        """``X-API-Key``, ``X-Timestamp``, ``X-Recv-Window`` and ``X-Signature`` for one request."""
        self._last_ms = max(int(self._clock() * 1000), self._last_ms + 1)
        timestamp, window = str(self._last_ms), str(RECV_WINDOW_MS)
        return {
            "X-API-Key": self.key,
            "X-Timestamp": timestamp,
            "X-Recv-Window": window,
            "X-Signature": signature(
                self._secret, timestamp=timestamp, recv_window=window, method=method, path=path, body=body
            ),
        }


class ExchangeClient:
    """The REST calls the bot makes; one pooled, kept-alive HTTP connection per host."""

    def __init__(self, *, api_url: str, ws_url: str, key: str, secret: str, timeout: float) -> None:
        self.signer = Signer(key, secret)
        self.ws_url = ws_url
        self._prefix = urlsplit(api_url).path.rstrip("/")
        # trust_env=False: the bot talks to its own exchange, never through a proxy set for the internet.
        self._http = httpx.AsyncClient(base_url=api_url, timeout=timeout, trust_env=False)

    async def close(self) -> None:
        await self._http.aclose()

    async def request(self, method: str, path: str, *, body: Any = None, signed: bool = True) -> Any:
        """``method path`` (query included) with a JSON ``body``; the decoded JSON answer.

        Raises ExchangeUnavailable on connection errors, timeouts and 5xx, ApiError on 4xx.
        """
        data = b"" if body is None else json.dumps(body, separators=(",", ":")).encode()
        headers = {"Content-Type": "application/json"} if data else {}
        if signed:
            headers |= self.signer.headers(method, self._prefix + path, data)
        try:
            response = await self._http.request(method, path, content=data or None, headers=headers)
        except httpx.HTTPError as error:
            raise ExchangeUnavailable(f"{method} {path}: {type(error).__name__} {error}") from None
        if response.status_code >= 500:
            raise ExchangeUnavailable(f"{method} {path}: HTTP {response.status_code}")
        try:
            payload = response.json()
        except ValueError:
            payload = None
        if response.status_code >= 400:
            error = payload if isinstance(payload, dict) else {}
            raise ApiError(
                response.status_code,
                str(error.get("code", "http_error")),
                str(error.get("message") or error.get("detail") or response.text[:200]),
            )
        return payload

    def ws_headers(self) -> dict[str, str]:
        """Headers that authenticate the WebSocket handshake: a signed ``GET`` of the socket's path."""
        parts = urlsplit(self.ws_url)
        path = parts.path or "/"
        return self.signer.headers("GET", f"{path}?{parts.query}" if parts.query else path)

    # The calls, one per endpoint the bot uses.

    async def markets(self) -> list[dict[str, Any]]:
        return await self.request("GET", "/api/v1/markets", signed=False)

    async def recent_trades(self, symbol: str, *, limit: int = 1) -> list[dict[str, Any]]:
        return await self.request("GET", f"/api/v1/markets/{symbol}/trades?{urlencode({'limit': limit})}", signed=False)

    async def depth(self, symbol: str, *, limit: int = 100) -> dict[str, Any]:
        return await self.request("GET", f"/api/v1/markets/{symbol}/depth?{urlencode({'limit': limit})}", signed=False)

    async def balances(self) -> list[dict[str, Any]]:
        return await self.request("GET", "/api/v1/account/balances")

    async def open_orders(self) -> list[dict[str, Any]]:
        return await self.request("GET", "/api/v1/orders/open")

    async def my_trades(self, symbol: str, *, limit: int = 100) -> list[dict[str, Any]]:
        """Our newest trades in ``symbol``, newest first (one row per trade, even a trade with ourselves)."""
        page = await self.request("GET", f"/api/v1/trades?{urlencode({'market': symbol, 'limit': limit})}")
        return page["results"]

    async def place_batch(self, orders: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        """One result per order (``status`` 201 with ``order``, or an ``error``), in request order."""
        results: list[dict[str, Any]] = []
        for start in range(0, len(orders), BATCH_LIMIT):
            chunk = list(orders[start : start + BATCH_LIMIT])
            results += (await self.request("POST", "/api/v1/orders/batch", body={"orders": chunk}))["results"]
        return results

    async def cancel_batch(self, order_ids: Sequence[int]) -> list[dict[str, Any]]:
        results: list[dict[str, Any]] = []
        for start in range(0, len(order_ids), BATCH_LIMIT):
            chunk = list(order_ids[start : start + BATCH_LIMIT])
            results += (await self.request("POST", "/api/v1/orders/cancel-batch", body={"order_ids": chunk}))["results"]
        return results

    async def place(self, order: dict[str, Any]) -> dict[str, Any]:
        return await self.request("POST", "/api/v1/orders", body=order)
