"""Signing as Binance's clients sign (HMAC-SHA256 over the query string and body), through Django's test client."""

from __future__ import annotations

import hashlib
import hmac
import time
from typing import Any
from urllib.parse import urlencode


def binance_signature(secret: str, total_params: str) -> str:
    return hmac.new(secret.encode(), total_params.encode(), hashlib.sha256).hexdigest()


def now_ms() -> int:
    return int(time.time() * 1000)


class BinanceClient:
    """``get``/``post``/``delete`` a Binance endpoint, signed with ``timestamp`` (and ``recvWindow``) added."""

    def __init__(self, client, *, key: str, secret: str) -> None:
        self.client, self.key, self.secret = client, key, secret

    def signed_query(self, params: dict[str, Any], *, timestamp: int | None = None) -> str:
        query = urlencode({**params, "timestamp": now_ms() if timestamp is None else timestamp})
        return f"{query}&signature={binance_signature(self.secret, query)}"

    def get(self, path: str, **params: Any):
        return self.client.get(f"{path}?{self.signed_query(params)}", HTTP_X_MBX_APIKEY=self.key)

    def delete(self, path: str, **params: Any):
        return self.client.delete(f"{path}?{self.signed_query(params)}", HTTP_X_MBX_APIKEY=self.key)

    def post(self, path: str, **params: Any):
        return self.client.post(
            path,
            data=self.signed_query(params),
            content_type="application/x-www-form-urlencoded",
            HTTP_X_MBX_APIKEY=self.key,
        )

    def raw(self, method: str, path: str, *, query: str = "", body: str = "", key: str | None = None):
        """Send exactly ``query`` and ``body`` (for tampering and replay tests)."""
        send = getattr(self.client, method.lower())
        headers = {"HTTP_X_MBX_APIKEY": self.key if key is None else key}
        url = f"{path}?{query}" if query else path
        if method.upper() == "GET":
            return send(url, **headers)
        return send(url, data=body, content_type="application/x-www-form-urlencoded", **headers)
