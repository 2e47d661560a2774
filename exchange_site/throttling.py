"""Rate limits counted in Redis with one round trip per request (fixed windows).

DRF's stock throttles keep a list of timestamps in the cache: a read and a
write per request.  These count with INCR + EXPIRE in one pipeline.
"""

from __future__ import annotations

import time

from rest_framework.settings import api_settings
from rest_framework.throttling import SimpleRateThrottle

from exchange_site.redis import get_redis


def hit_all(buckets: list[tuple[str, str]]) -> float | None:
    """Count one attempt in each ``(bucket, rate)``'s fixed window, in one round trip.

    None if every bucket is within its rate, else the seconds until the
    latest-reopening exceeded window.  INCR is atomic in Redis, so however many
    processes and threads race, at most ``limit`` attempts per window pass.
    """
    now = time.time()
    windows = []
    pipe = get_redis().pipeline(transaction=False)
    for bucket, rate in buckets:
        limit, period = parse_rate(rate)
        window = int(now // period)
        key = f"throttle:{bucket}:{window}"
        pipe.incr(key)
        pipe.expire(key, period + 1)
        windows.append((limit, period, window))
    counts = pipe.execute()[::2]
    waits = [
        (window + 1) * period - now
        for (limit, period, window), count in zip(windows, counts, strict=True)
        if count > limit
    ]
    return max(waits) if waits else None


def hit(bucket: str, *, rate: str) -> float | None:
    """Count one attempt in ``bucket``'s fixed window; None if allowed, else the seconds until the next window."""
    return hit_all([(bucket, rate)])


def parse_rate(rate: str) -> tuple[int, int]:
    """``"10/minute"`` -> ``(10, 60)``; like DRF's rates (s, m, h, d by their first letter)."""
    count, period = rate.split("/")
    return int(count), {"s": 1, "m": 60, "h": 3600, "d": 86400}[period[0]]


class _RedisWindowThrottle(SimpleRateThrottle):
    """A DRF throttle counted by :func:`hit_all`; subclasses name their buckets."""

    def buckets(self, request, view) -> list[tuple[str, str]]:
        ident = self.get_cache_key(request, view)
        return [] if ident is None or self.rate is None else [(f"{self.scope}:{ident}", self.rate)]

    def allow_request(self, request, view) -> bool:
        buckets = self.buckets(request, view)
        self._wait = hit_all(buckets) if buckets else None
        return self._wait is None

    def wait(self) -> float | None:
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


ORDERS_SCOPE = "orders"


class UserAndOrderRateThrottle(UserRateThrottle):
    """For requests that place orders: the per-user rate and the order rate (``orders``), in one round trip.

    Replaces :class:`UserRateThrottle` on those requests, so order entry pays
    one Redis round trip for both limits.  A batch request counts once.
    """

    def buckets(self, request, view) -> list[tuple[str, str]]:
        user_buckets = super().buckets(request, view)
        # Read at each request (not frozen at import as DRF's rates are), so
        # ``override_settings`` and a changed environment apply.
        rate = api_settings.DEFAULT_THROTTLE_RATES.get(ORDERS_SCOPE)
        if not (request.user and request.user.is_authenticated) or rate is None:
            return user_buckets
        return [*user_buckets, (f"{ORDERS_SCOPE}:{request.user.pk}", rate)]


class ThrottleOrderPlacement:
    """Mixin for API views whose POST places orders: the user throttle also counts the order rate."""

    def get_throttles(self) -> list:
        throttles = list(super().get_throttles())
        if self.request.method == "POST":
            throttles = [
                UserAndOrderRateThrottle() if type(throttle) is UserRateThrottle else throttle for throttle in throttles
            ]
            if not any(isinstance(throttle, UserAndOrderRateThrottle) for throttle in throttles):
                throttles.append(UserAndOrderRateThrottle())
        return throttles


def order_placement_wait(user_id: int) -> float | None:
    """For order forms outside DRF: count one placement in the same bucket as :class:`UserAndOrderRateThrottle`."""
    rate = api_settings.DEFAULT_THROTTLE_RATES.get(ORDERS_SCOPE)
    return None if rate is None else hit(f"{ORDERS_SCOPE}:{user_id}", rate=rate)
