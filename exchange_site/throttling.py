"""Rate limits counted in Redis with one round trip per request (fixed windows).

DRF's stock throttles keep a list of timestamps in the cache: a read and a
write per request.  These count with INCR + EXPIRE in one pipeline.
"""

from __future__ import annotations

import time

from rest_framework.settings import api_settings
from rest_framework.throttling import SimpleRateThrottle

from exchange_site.redis import get_redis


class _RedisWindowThrottle(SimpleRateThrottle):
    def allow_request(self, request, view) -> bool:
        if self.rate is None:
            return True
        ident = self.get_cache_key(request, view)
        if ident is None:
            return True
        now = time.time()
        window = int(now // self.duration)
        key = f"throttle:{self.scope}:{ident}:{window}"
        pipe = get_redis().pipeline(transaction=False)
        pipe.incr(key)
        pipe.expire(key, self.duration + 1)
        count, _ = pipe.execute()
        self._wait = (window + 1) * self.duration - now
        return count <= self.num_requests

    def wait(self) -> float:
        return self._wait


class UserRateThrottle(_RedisWindowThrottle):
    """Per authenticated user (rate ``user``)."""

    scope = "user"

    def get_cache_key(self, request, view) -> str | None:
        return str(request.user.pk) if request.user and request.user.is_authenticated else None


class AnonRateThrottle(_RedisWindowThrottle):
    """Per client address for anonymous requests (rate ``anon``)."""

    scope = "anon"

    def get_cache_key(self, request, view) -> str | None:
        if request.user and request.user.is_authenticated:
            return None
        return self.get_ident(request)


class OrderRateThrottle(_RedisWindowThrottle):
    """Order placement per user (rate ``orders``), on top of the general per-user rate.

    The rate is read at each request (not frozen at import as DRF's stock
    throttles do), so ``override_settings`` and a changed environment apply.
    A batch request counts once.
    """

    scope = "orders"

    def get_rate(self) -> str | None:
        return api_settings.DEFAULT_THROTTLE_RATES.get(self.scope)

    def get_cache_key(self, request, view) -> str | None:
        return str(request.user.pk) if request.user and request.user.is_authenticated else None


def parse_rate(rate: str) -> tuple[int, int]:
    """``"10/minute"`` -> ``(10, 60)``; like DRF's rates (s, m, h, d by their first letter)."""
    count, period = rate.split("/")
    return int(count), {"s": 1, "m": 60, "h": 3600, "d": 86400}[period[0]]


def hit(bucket: str, *, rate: str) -> float | None:
    """Count one attempt in ``bucket``'s fixed window; None if allowed, else the seconds until the next window.

    INCR is atomic in Redis, so however many processes and threads race, at
    most ``limit`` attempts per window are allowed.
    """
    limit, period = parse_rate(rate)
    now = time.time()
    window = int(now // period)
    key = f"throttle:{bucket}:{window}"
    pipe = get_redis().pipeline(transaction=False)
    pipe.incr(key)
    pipe.expire(key, period + 1)
    count, _ = pipe.execute()
    return None if count <= limit else (window + 1) * period - now


class ThrottleOrderPlacement:
    """Mixin for API views whose POST places orders: adds :class:`OrderRateThrottle` to POST only."""

    def get_throttles(self) -> list:
        throttles = list(super().get_throttles())
        if self.request.method == "POST":
            throttles.append(OrderRateThrottle())
        return throttles


def order_placement_wait(user_id: int) -> float | None:
    """For order forms outside DRF: count one placement in the same bucket as :class:`OrderRateThrottle`."""
    rate = api_settings.DEFAULT_THROTTLE_RATES.get(OrderRateThrottle.scope)
    return None if rate is None else hit(f"{OrderRateThrottle.scope}:{user_id}", rate=rate)
