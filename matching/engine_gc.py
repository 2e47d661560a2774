"""Garbage-collector setting for the engine process (no Django: the benchmark imports it too).

The book allocates a few small lists and tuples per order and makes no
reference cycles, so CPython's default young-generation threshold (700
allocations) runs collections that find nothing. A larger threshold keeps
the collector out of the hot path; ``gc.freeze()`` after the book is rebuilt
keeps the long-lived book out of full collections.
"""

from __future__ import annotations

import gc

ENGINE_GC_THRESHOLD = (50_000, 50, 100)


def tune_gc() -> None:
    """Apply the engine's collector setting and freeze what exists now (call after rebuilding books)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*ENGINE_GC_THRESHOLD)
