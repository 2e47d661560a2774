"""One Redis client per process, shared by threads (redis-py clients are thread-safe)."""

from __future__ import annotations

import threading

import redis
from django.conf import settings


class _ProcessClient:
    """``get_redis()``: the process's client, created once even when threads ask at the same moment.

    ``functools.cache`` alone let threads arriving together each build one: the
    extra clients are garbage-collected, and a redis-py client closes its
    connection pool when collected, pulling the connection from under the
    pipeline still using it (seen as "I/O operation on closed file" when
    daphne's request threads start).  ``cache_clear()`` forgets the client, as
    with ``functools.cache`` (tests pointing it at another server).
    """

    def __init__(self) -> None:
        self._client: redis.Redis | None = None
        self._lock = threading.Lock()

    def __call__(self) -> redis.Redis:
        client = self._client
        if client is None:
            with self._lock:
                if self._client is None:
                    # Blocking: a burst of threads beyond the pool's 100 connections waits
                    # (up to 10 s) for one to come back instead of failing at once with
                    # "Too many connections" (seen with 200 request threads in one process).
                    pool = redis.BlockingConnectionPool.from_url(
                        settings.REDIS_URL, max_connections=100, timeout=10, health_check_interval=30
                    )
                    self._client = redis.Redis.from_pool(pool)
                client = self._client
        return client

    def cache_clear(self) -> None:
        with self._lock:
            self._client = None


get_redis = _ProcessClient()
