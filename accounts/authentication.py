"""API-key authentication for bots: HMAC-SHA256 over the request, a timestamp and a window.

A client sends ``X-API-Key``, ``X-Timestamp`` (ms since the epoch),
optionally ``X-Recv-Window`` (ms, default 5000, at most 60000) and
``X-Signature``: the hex HMAC-SHA256, keyed with the API secret, of::

    f"{timestamp}\\n{recv_window}\\n{METHOD}\\n{path_with_query}\\n{body}"

(``recv_window`` as sent in the header; empty when the header is left out.)

A request older than its window is refused, so a captured one cannot be
replayed later; and each signature is remembered in Redis for the window, so
it cannot be replayed inside it either.

A key with an IP allowlist is refused (``ip_not_allowed``) on any request
from an address outside it (``exchange_site.client_ip`` says how the address
is read behind proxies).  What a key may do once authenticated is its scopes'
business: ``accounts.permissions.ApiKeyScopes``.
"""

from __future__ import annotations

import hashlib
import hmac
import time

from django.conf import settings
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions

from accounts.models import ApiKey, User
from accounts.services import api_key_secret, revoked_marker
from exchange_site.client_ip import IPAddress, allowed, client_ip
from exchange_site.local_cache import MISSING, TTLCache
from exchange_site.redis import get_redis

HEADER_KEY = "HTTP_X_API_KEY"
HEADER_TIMESTAMP = "HTTP_X_TIMESTAMP"
HEADER_WINDOW = "HTTP_X_RECV_WINDOW"
HEADER_SIGNATURE = "HTTP_X_SIGNATURE"
# A client clock a little ahead of ours is tolerated, as Binance does.
CLOCK_AHEAD_TOLERANCE_MS = 1000


def signature_payload(*, timestamp: str, recv_window: str, method: str, path: str, body: bytes) -> bytes:
    return f"{timestamp}\n{recv_window}\n{method.upper()}\n{path}\n".encode() + body


def sign(secret: str, payload: bytes) -> str:
    return hmac.new(secret.encode(), payload, hashlib.sha256).hexdigest()


# Keys are read on every signed request; each worker keeps them a few seconds.
# Revocation cannot wait for that: ``api_key_revoke`` also sets a Redis marker
# that every request checks (in the same round trip as the replay guard).
API_KEY_CACHE_SECONDS = 10.0
_cached_keys = TTLCache(API_KEY_CACHE_SECONDS)


class SignatureRefused(exceptions.AuthenticationFailed):
    """A signed request refused, with ``reason`` naming the check that failed.

    Reasons: ``missing`` (no timestamp or signature), ``malformed_time``,
    ``window_out_of_range``, ``outside_window``, ``unknown_key``,
    ``bad_signature``, ``ip_not_allowed``, ``replayed``.  Our API answers all of them alike; the
    Binance-compatible API (``compat``) maps each to Binance's error code.
    """

    def __init__(self, message: str, *, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


def check_request_time(*, timestamp: str, recv_window: str) -> int:
    """The request's window (ms) once its timestamp lies inside it, else ``SignatureRefused``.

    ``recv_window`` empty means the default window.  A timestamp up to
    ``CLOCK_AHEAD_TOLERANCE_MS`` ahead of ours is accepted, as Binance does.
    """
    try:
        ts = int(timestamp)
        window = int(recv_window) if recv_window else settings.EXCHANGE["API_RECV_WINDOW_MS"]
    except ValueError:
        raise SignatureRefused(
            "X-Timestamp and X-Recv-Window must be whole milliseconds.", reason="malformed_time"
        ) from None
    if not 0 < window <= settings.EXCHANGE["API_MAX_RECV_WINDOW_MS"]:
        raise SignatureRefused(
            f"X-Recv-Window must be between 1 and {settings.EXCHANGE['API_MAX_RECV_WINDOW_MS']} ms.",
            reason="window_out_of_range",
        )
    now = int(time.time() * 1000)
    if ts > now + CLOCK_AHEAD_TOLERANCE_MS or now - ts > window:
        raise SignatureRefused(
            f"The request's timestamp is outside the receive window ({window} ms); check your clock "
            f"(server time is {now}).",
            reason="outside_window",
        )
    return window


def active_credentials(key: str) -> tuple[ApiKey, str]:
    """The active key ``key`` (with its user) and its decrypted secret, or ``SignatureRefused``.

    Served from this worker's cache for a few seconds; ``claim_signature`` (or
    ``check_not_revoked``) then asks Redis whether the key was revoked since.
    """
    cached = _cached_keys.get(key)
    if cached is MISSING:
        api_key = ApiKey.objects.select_related("user").filter(key=key, revoked_at__isnull=True).first()
        cached = (api_key, api_key_secret(api_key)) if api_key is not None and api_key.user.is_active else None
        _cached_keys.set(key, cached)
    if cached is None:
        raise SignatureRefused("Unknown or revoked API key.", reason="unknown_key")
    return cached


def check_signature(*, secret: str, payload: bytes, signature: str) -> None:
    """``signature`` must be the hex HMAC-SHA256 of ``payload`` (any case), compared in constant time."""
    # compare_digest raises TypeError on non-ASCII text: such a signature is simply wrong.
    if not signature.isascii() or not hmac.compare_digest(sign(secret, payload), signature.lower()):
        raise SignatureRefused("The signature does not match this request.", reason="bad_signature")


def check_ip(api_key: ApiKey, ip: IPAddress | None) -> None:
    """Refuse a request from outside the key's IP allowlist (a key without one is not restricted)."""
    if not allowed(ip, api_key.ip_allowlist):
        raise SignatureRefused(
            f"This API key may not be used from {ip or 'an unknown address'}: it is not in the key's IP allowlist.",
            reason="ip_not_allowed",
        )


def claim_signature(*, key: str, signature: str, window: int) -> None:
    """Remember ``signature`` for its window (seen before: a replay) and refuse a key revoked since it was cached.

    One Redis round trip.  Call only once the signature is known to be valid.
    """
    pipe = get_redis().pipeline(transaction=False)
    pipe.set(f"api:seen:{signature.lower()}", 1, nx=True, px=window + CLOCK_AHEAD_TOLERANCE_MS)
    pipe.exists(revoked_marker(key))
    fresh, revoked = pipe.execute()
    if revoked:
        _cached_keys.discard(key)
        raise SignatureRefused("Unknown or revoked API key.", reason="unknown_key")
    if not fresh:
        raise SignatureRefused("This signed request was already used; sign each request anew.", reason="replayed")


def check_not_revoked(key: str) -> None:
    """For requests that carry a key but no signature (Binance's listen keys): refuse a revoked key at once."""
    if get_redis().exists(revoked_marker(key)):
        _cached_keys.discard(key)
        raise SignatureRefused("Unknown or revoked API key.", reason="unknown_key")


def verify_signed_request(
    *,
    key: str,
    timestamp: str,
    recv_window: str,
    signature: str,
    method: str,
    path: str,
    body: bytes,
    ip: IPAddress | None,
) -> tuple[User, ApiKey]:
    """The user and key behind a signed request, or ``SignatureRefused`` saying what is wrong.

    Shared by the REST API (headers of each request) and the WebSocket
    handshake (headers of the upgrade request), so both refuse the same things.
    """
    if not timestamp or not signature:
        raise SignatureRefused("Signed requests need X-Timestamp and X-Signature headers.", reason="missing")
    # The payload signs the header as sent ("" when absent), so a client's
    # signature never depends on the server's default window.
    window = check_request_time(timestamp=timestamp, recv_window=recv_window)
    api_key, secret = active_credentials(key)
    payload = signature_payload(timestamp=timestamp, recv_window=recv_window, method=method, path=path, body=body)
    check_signature(secret=secret, payload=payload, signature=signature)
    # Only once the signature is good: a caller without the secret learns nothing about the allowlist.
    check_ip(api_key, ip)
    # The same request twice is a replay; and the key may have been revoked since
    # this worker cached it.
    claim_signature(key=key, signature=signature, window=window)
    return api_key.user, api_key


class ApiKeyAuthentication(authentication.BaseAuthentication):
    """Authenticates requests that carry ``X-API-Key``; others fall through to the session."""

    def authenticate(self, request):
        meta = request.META
        key = meta.get(HEADER_KEY)
        if not key:
            return None
        return verify_signed_request(
            key=key,
            timestamp=meta.get(HEADER_TIMESTAMP, ""),
            recv_window=meta.get(HEADER_WINDOW, ""),
            signature=meta.get(HEADER_SIGNATURE, ""),
            method=request.method,
            path=request.get_full_path(),
            body=request.body,
            ip=client_ip(meta),
        )

    def authenticate_header(self, request) -> str:
        return "X-API-Key"


class ApiKeyAuthenticationScheme(OpenApiAuthenticationExtension):
    target_class = "accounts.authentication.ApiKeyAuthentication"
    name = "ApiKeySignature"

    def get_security_definition(self, auto_schema):
        return {
            "type": "apiKey",
            "in": "header",
            "name": "X-API-Key",
            "description": "With X-Timestamp, X-Recv-Window and X-Signature (HMAC-SHA256); see the README.",
        }
