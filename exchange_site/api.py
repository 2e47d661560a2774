"""API plumbing shared by every app: one error shape, decimals that never pass through float."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.views import defaults
from rest_framework import exceptions, status
from rest_framework.parsers import JSONParser
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from exchange_site import outages
from exchange_site.errors import ApplicationError

# DRF's own exceptions mapped to stable codes people and bots can switch on.
_DRF_CODES: dict[type[exceptions.APIException], str] = {
    exceptions.NotAuthenticated: "not_authenticated",
    exceptions.AuthenticationFailed: "authentication_failed",
    exceptions.PermissionDenied: "permission_denied",
    exceptions.NotFound: "not_found",
    exceptions.MethodNotAllowed: "method_not_allowed",
    exceptions.NotAcceptable: "not_acceptable",
    exceptions.UnsupportedMediaType: "unsupported_media_type",
    exceptions.Throttled: "throttled",
    exceptions.ParseError: "malformed_request",
    exceptions.ValidationError: "invalid_request",
}


class DecimalJSONParser(JSONParser):
    """JSON whose numbers become ``Decimal``, never ``float``; NaN and Infinity are refused."""

    def parse(self, stream, media_type=None, parser_context=None) -> Any:
        encoding = (parser_context or {}).get("encoding", settings.DEFAULT_CHARSET)
        try:
            text = stream.read().decode(encoding)
            return json.loads(text, parse_float=Decimal, parse_constant=_refuse_constant)
        except (ValueError, UnicodeDecodeError) as exc:
            raise exceptions.ParseError(f"The request body is not valid JSON: {exc}") from exc


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number this API accepts")


def error_body(code: str, message: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"code": code, "message": message, "details": details or {}}


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """Turn ApplicationError, DRF's errors and backend outages (503) into ``{"code", "message", "details"}``."""
    if isinstance(exc, ApplicationError):
        return Response(error_body(exc.code, exc.message, exc.details), status=exc.status_code)
    if outages.is_outage(exc):
        outages.log_outage(exc, context["request"].path if context.get("request") else "")
        return Response(
            error_body(outages.CODE, outages.MESSAGE),
            status=status.HTTP_503_SERVICE_UNAVAILABLE,
            headers={"Retry-After": str(outages.RETRY_AFTER_S)},
        )
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied()
    response = drf_exception_handler(exc, context)
    if response is None or not isinstance(exc, exceptions.APIException):
        return response
    code = next((c for kind, c in _DRF_CODES.items() if isinstance(exc, kind)), "error")
    if isinstance(exc, exceptions.ValidationError):
        response.data = validation_error_body(exc)
        response.status_code = status.HTTP_400_BAD_REQUEST
    else:
        response.data = error_body(code, str(exc.detail))
    return response


def validation_error_body(exc: exceptions.ValidationError) -> dict[str, Any]:
    """A serializer's field errors as one error body: the first message, and all of them in details."""
    details = exc.detail if isinstance(exc.detail, dict) else {"non_field_errors": exc.detail}
    return error_body("invalid_request", _first_message(details), {"fields": details})


def _first_message(details: Any, prefix: str = "") -> str:
    """The first field error as one sentence, e.g. 'price: A valid number is required.'"""
    if isinstance(details, dict):
        for key, value in details.items():
            label = key if key != "non_field_errors" else ""
            return _first_message(value, f"{prefix}{label}: " if label else prefix)
    if isinstance(details, list) and details:
        return _first_message(details[0], prefix)
    return f"{prefix}{details}"


def _is_api(request: HttpRequest) -> bool:
    return request.path.startswith(("/api/", "/sapi/"))


def not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    """``handler404``: a path no route matches (``/api/v1/orders/abc``) is a JSON 404 under /api/, a page elsewhere.

    Inside a DRF view the exception handler already answers; this covers the URL
    resolver itself, which runs before any view (found by schemathesis).
    """
    if _is_api(request):
        message = f"No API endpoint matches {request.path[:200]!r}; the endpoints are listed at /api/docs."
        return JsonResponse(error_body("not_found", message), status=404)
    return defaults.page_not_found(request, exception)


def bad_request(request: HttpRequest, exception: Exception) -> HttpResponse:
    """``handler400``: a request Django refuses before any view (e.g. too many fields), in the API's shape."""
    if _is_api(request):
        return JsonResponse(error_body("malformed_request", "The request could not be read."), status=400)
    return defaults.bad_request(request, exception)
