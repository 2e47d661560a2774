"""The process's Redis client survives threads that ask for it at the same moment (daphne's request threads)."""

from __future__ import annotations

import threading

from exchange_site import redis as redis_module


def test_threads_arriving_together_share_one_client_and_lose_no_connection():
    errors: list[Exception] = []
    clients: set[int] = set()
    start = threading.Barrier(8)

    def use() -> None:
        start.wait()
        try:
            client = redis_module.get_redis()
            clients.add(id(client))
            pipe = client.pipeline(transaction=False)
            pipe.incr("test:redis-client")
            pipe.expire("test:redis-client", 5)
            pipe.execute()
        except Exception as error:  # the failure this guards against: a connection closed under the pipeline
            errors.append(error)

    for _ in range(20):
        redis_module.get_redis.cache_clear()
        threads = [threading.Thread(target=use) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert len(clients) == 1, "every thread must get the same client"
        clients.clear()
    assert errors == []
