"""A backend outage (Redis or PostgreSQL unreachable) answered as a 503 that says "retry", never an HTML 500.

Every API request touches Redis (rate limits, signature replay checks) and
most touch PostgreSQL, so while either is down each request fails.  The
client should learn that the failure is ours and temporary (retry after a
pause), not that its request was wrong (4xx) nor get a stack-trace page.

The REST API's exception handler (``exchange_site.api``) and the Binance
API's (``compat.errors``) render these errors in their own shapes; the
middleware below covers everything else (pages, health-free plain views).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import psycopg
import redis
from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse, JsonResponse

logger = logging.getLogger(__name__)

# Connection refused or lost, timeouts, the server shutting down; in PostgreSQL's case also
# serialization failures and deadlocks (OperationalError subclasses): all worth a retry.
OUTAGE_ERRORS: tuple[type[BaseException], ...] = (
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    OperationalError,
    InterfaceError,
    psycopg.OperationalError,
    psycopg.InterfaceError,
)
CODE = "service_unavailable"
RETRY_AFTER_S = 5
MESSAGE = (
    f"The exchange cannot reach its data store right now; retry in {RETRY_AFTER_S} seconds. "
    "If you were placing an order, check your open orders (or resend it with the same client_order_id) "
    "before placing it again."
)


def is_outage(exc: BaseException) -> bool:
    return isinstance(exc, OUTAGE_ERRORS)


def log_outage(exc: BaseException, request_path: str) -> None:
    """An outage is an incident (unlike a refused request): log it, without a traceback per request."""
    detail = " ".join(str(exc).split())[:300]  # psycopg's messages span lines; keep one log line per request
    logger.error("backend_unavailable path=%s error=%s: %s", request_path, type(exc).__name__, detail)


class OutageMiddleware:
    """Outside DRF (pages), an outage becomes a 503 with Retry-After; JSON under /api/ and /sapi/."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exc: Exception) -> HttpResponse | None:
        if not is_outage(exc):
            return None
        log_outage(exc, request.path)
        if request.path.startswith(("/api/", "/sapi/")):
            response: HttpResponse = JsonResponse({"code": CODE, "message": MESSAGE, "details": {}}, status=503)
        else:
            response = HttpResponse(
                "<!doctype html><title>Temporarily unavailable</title>"
                f"<h1>Temporarily unavailable</h1><p>{MESSAGE}</p>",
                status=503,
                content_type="text/html; charset=utf-8",
            )
        response["Retry-After"] = str(RETRY_AFTER_S)
        return response
