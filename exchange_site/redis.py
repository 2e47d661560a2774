"""One Redis client per process, shared by threads (redis-py clients are thread-safe)."""

from __future__ import annotations

import threading

import redis
from django.conf import settings

_client: redis.Redis | None = None
_creating = threading.Lock()


def get_redis() -> redis.Redis:
    """The process's client, created once even when threads ask for it at the same moment.

    Threads arriving together must not each build one: the extra clients are
    garbage-collected, and a redis-py client closes its connection pool when
    collected, pulling the connection from under the pipeline still using it
    (seen as "I/O operation on closed file" when daphne's request threads start).
    """
    global _client
    client = _client
    if client is None:
        with _creating:
            if _client is None:
                _client = redis.Redis.from_url(settings.REDIS_URL, health_check_interval=30)
            client = _client
    return client
