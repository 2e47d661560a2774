"""Start many threads at the same instant, each on its own database connection: the races the tests provoke."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any

from django.db import connection


def run_at_once(count: int, work: Callable[[int], Any]) -> list:
    """Run ``work(index)`` in ``count`` threads released by one barrier; return their results in index order.

    Each thread closes its own database connection at the end, so a race
    between threads is a race between PostgreSQL sessions, as in production.
    """
    results: list = [None] * count
    barrier = threading.Barrier(count)

    def worker(index: int) -> None:
        try:
            barrier.wait()
            results[index] = work(index)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def run_threads(count: int, work: Callable[[int], Iterable[Any]]) -> Counter:
    """Like :func:`run_at_once` for ``work`` that yields outcomes: how many times each outcome came."""
    return Counter(outcome for outcomes in run_at_once(count, lambda index: list(work(index))) for outcome in outcomes)
