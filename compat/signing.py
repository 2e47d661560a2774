"""Binance's request signing, checked with the same API keys, clock rules and replay guard as our own API.

REST (``SIGNED`` endpoints): ``X-MBX-APIKEY`` names the key; ``signature`` is
the hex HMAC-SHA256, keyed with the secret, of *totalParams*: the raw query
string followed directly by the raw request body, each without its
``signature`` parameter (Binance's documented rule; the bytes are taken as
sent, never re-encoded).  ``timestamp`` (ms) must be within ``recvWindow``
(default 5000, at most 60000) of the server's clock and at most 1 s ahead.

WebSocket API (``userDataStream.subscribe.signature`` and friends): the
payload is the request's params other than ``signature``, sorted by name, as
``name=value`` joined with ``&``.

On top of Binance's rules, each signature is accepted once
(``accounts.authentication.claim_signature``): a request captured and
replayed inside its window is refused too.
"""

from __future__ import annotations

import time

from rest_framework import authentication, status
from rest_framework.permissions import BasePermission
from rest_framework.request import Request

from accounts.authentication import (
    SignatureRefused,
    active_credentials,
    check_ip,
    check_not_revoked,
    check_request_time,
    check_signature,
    claim_signature,
)
from accounts.models import ApiKey, User
from accounts.permissions import required_scope
from compat.errors import INTEGER_PATTERN, BinanceError, illegal, mandatory
from compat.params import Params, parse_pairs
from exchange_site.client_ip import IPAddress, client_ip

API_KEY_HEADER = "HTTP_X_MBX_APIKEY"
MAX_RECV_WINDOW_MS = 60_000


def without_signature(raw: str) -> tuple[str, list[str]]:
    """``raw`` (a query string or form body) without its ``signature`` parameters, and their values."""
    if not raw:
        return "", []
    kept, signatures = [], []
    for part in raw.split("&"):
        if part.startswith("signature="):
            signatures.append(part[len("signature=") :])
        else:
            kept.append(part)
    return "&".join(kept), signatures


def total_params(query: str, body: str) -> tuple[str, str | None]:
    """Binance's *totalParams* (what is signed) and the signature sent, from the raw query string and body."""
    query_part, in_query = without_signature(query)
    body_part, in_body = without_signature(body)
    signatures = in_query + in_body
    if len(signatures) > 1:
        raise BinanceError(-1101, "Duplicate values for parameter 'signature'.")
    return query_part + body_part, (signatures[0] or None) if signatures else None


def ws_api_payload(params: Params) -> str:
    """The signed text of a WebSocket API request: its params but ``signature``, sorted, ``k=v`` joined by ``&``."""
    return "&".join(f"{name}={params[name]}" for name in sorted(params) if name != "signature")


def refusal(error: SignatureRefused, *, timestamp: str, recv_window: str) -> BinanceError:
    """Binance's code and message for the check that failed."""
    reason = error.reason
    if reason == "malformed_time":
        name = "timestamp" if not timestamp.isdigit() else "recvWindow"
        return illegal(name, INTEGER_PATTERN)
    if reason == "window_out_of_range":
        return BinanceError(-1131, f"recvWindow must be less than {MAX_RECV_WINDOW_MS}")
    if reason == "outside_window":
        if int(timestamp) > int(time.time() * 1000):
            return BinanceError(-1021, "Timestamp for this request was 1000ms ahead of the server's time.")
        return BinanceError(-1021, "Timestamp for this request is outside of the recvWindow.")
    if reason == "replayed":
        # Not a Binance rule, so no Binance message: the nearest code is the nonce's (clients
        # map it to InvalidNonce and sign again with a new timestamp).
        return BinanceError(
            -1021, "This request was already received (same signature within its recvWindow); sign it anew."
        )
    if reason == "bad_signature":
        return BinanceError(-1022, "Signature for this request is not valid.")
    return invalid_key()


def invalid_key() -> BinanceError:
    return BinanceError(-2015, "Invalid API-key, IP, or permissions for action.", status=status.HTTP_401_UNAUTHORIZED)


def missing_key() -> BinanceError:
    return BinanceError(-2014, "API-key format invalid.", status=status.HTTP_401_UNAUTHORIZED)


def verify(
    *, key: str, params: Params, payload: str, signature: str | None, ip: IPAddress | None
) -> tuple[User, ApiKey]:
    """The user and key behind a signed request, or the ``BinanceError`` Binance would answer."""
    timestamp = params.get("timestamp") or ""
    recv_window = params.get("recvWindow") or ""
    if not timestamp:
        raise mandatory("timestamp")
    if not signature:
        raise mandatory("signature")
    try:
        window = check_request_time(timestamp=timestamp, recv_window=recv_window)
        api_key, secret = active_credentials(key)
        check_signature(secret=secret, payload=payload.encode(), signature=signature)
        check_ip(api_key, ip)
        claim_signature(key=key, signature=signature, window=window)
    except SignatureRefused as error:
        raise refusal(error, timestamp=timestamp, recv_window=recv_window) from None
    return api_key.user, api_key


def key_only(key: str | None, *, ip: IPAddress | None) -> tuple[User, ApiKey]:
    """The user behind an API key sent without a signature (Binance's USER_STREAM and MARKET_DATA calls)."""
    if not key:
        raise missing_key()
    try:
        api_key, _ = active_credentials(key)
        check_ip(api_key, ip)
        check_not_revoked(key)
    except SignatureRefused:
        raise invalid_key() from None
    return api_key.user, api_key


class BinanceSignature(authentication.BaseAuthentication):
    """DRF authentication for ``SIGNED`` endpoints; the parsed params are left on ``request.binance_params``."""

    def authenticate(self, request: Request):
        key = request.META.get(API_KEY_HEADER)
        if not key:
            raise missing_key()
        query = request._request.META.get("QUERY_STRING", "")
        body = request._request.body.decode("utf-8", errors="replace") if request._request.body else ""
        payload, signature = total_params(query, body)
        params = {**parse_pairs(body), **parse_pairs(query)}
        params.pop("signature", None)
        user, api_key = verify(
            key=key, params=params, payload=payload, signature=signature, ip=client_ip(request._request.META)
        )
        request.binance_params = params
        return user, api_key

    def authenticate_header(self, request: Request) -> str:
        return "X-MBX-APIKEY"


class BinanceApiKey(authentication.BaseAuthentication):
    """DRF authentication for calls Binance authorises by the API key alone (listen keys)."""

    def authenticate(self, request: Request):
        return key_only(request.META.get(API_KEY_HEADER), ip=client_ip(request._request.META))

    def authenticate_header(self, request: Request) -> str:
        return "X-MBX-APIKEY"


class BinanceKeyScopes(BasePermission):
    """The key's scopes, as ``accounts.permissions.ApiKeyScopes`` has them, refused in Binance's words.

    Binance answers a key without the permission (e.g. reading-only, placing an
    order) with -2015 "Invalid API-key, IP, or permissions for action.".
    """

    def has_permission(self, request: Request, view) -> bool:
        api_key = request.auth
        if isinstance(api_key, ApiKey) and not api_key.has_scope(required_scope(request.method, view)):
            raise invalid_key()
        return True
