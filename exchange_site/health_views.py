"""``/healthz`` and ``/readyz``: plain Django views, outside DRF's authentication and throttles.

Probes hit them every few seconds from one address; DRF's anonymous throttle
would soon refuse them.  The checks live in ``exchange_site.health``.
"""

from __future__ import annotations

from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

from exchange_site import health


@never_cache
@require_safe
def healthz(request: HttpRequest) -> JsonResponse:
    """Liveness: this process answers. Touches neither the database nor Redis."""
    return JsonResponse({"status": "alive"})


@never_cache
@require_safe
def readyz(request: HttpRequest) -> JsonResponse:
    """Readiness: 200 when PostgreSQL, Redis and every trading market's engine are up, else 503 naming what is not."""
    report = health.readiness()
    return JsonResponse(report.as_dict(), status=200 if report.ok else 503)
