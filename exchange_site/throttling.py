"""Rate limits counted in Redis with one round trip per request (fixed windows).

DRF's stock throttles keep a list of timestamps in the cache: a read and a
write per request.  These count with INCR + EXPIRE in one pipeline.
"""

from __future__ import annotations

import time

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
