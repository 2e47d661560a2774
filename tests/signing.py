"""Build signed requests for the API-key scheme of ``accounts.authentication``.

``signed_headers`` gives the ``X-API-Key``/``X-Timestamp``/``X-Recv-Window``/
``X-Signature`` headers as Django test-client ``extra`` (``HTTP_X_...``) keys;
``signed_request`` sends one through a test client with the exact body it signed.
"""

from __future__ import annotations

import json
import time
from typing import Any

from accounts.authentication import sign, signature_payload


def now_ms() -> int:
    return int(time.time() * 1000)


def signed_headers(
    *,
    key: str,
    secret: str,
    method: str,
    path: str,
    body: bytes = b"",
    timestamp: int | None = None,
    recv_window: int | None = 5000,
) -> dict[str, str]:
    """Headers signing ``METHOD path`` (with its query string) and ``body``.

    ``recv_window=None`` leaves ``X-Recv-Window`` out; the signature then covers
    an empty window field, and the server applies its default window.
    """
    ts = str(now_ms() if timestamp is None else timestamp)
    window = "" if recv_window is None else str(recv_window)
    payload = signature_payload(timestamp=ts, recv_window=window, method=method, path=path, body=body)
    headers = {"HTTP_X_API_KEY": key, "HTTP_X_TIMESTAMP": ts, "HTTP_X_SIGNATURE": sign(secret, payload)}
    if recv_window is not None:
        headers["HTTP_X_RECV_WINDOW"] = window
    return headers


def encode(data: Any) -> bytes:
    return b"" if data is None else json.dumps(data).encode()


def signed_request(client, method: str, path: str, *, key: str, secret: str, data: Any = None, **options):
    """Send ``method path`` through the Django/DRF test ``client``, signed; ``data`` is sent as JSON.

    ``options`` go to :func:`signed_headers` (``timestamp``, ``recv_window``).
    """
    body = encode(data)
    headers = signed_headers(key=key, secret=secret, method=method, path=path, body=body, **options)
    send = getattr(client, method.lower())
    if method.upper() in ("GET", "HEAD"):
        # The query string is already part of ``path``; the test client keeps it as is.
        return send(path, **headers)
    return send(path, data=body, content_type="application/json", **headers)
