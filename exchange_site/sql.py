"""Set-based SQL helpers: many rows in one statement whose text does not depend on the row count.

``VALUES (%s, ...), (%s, ...)`` grows with the rows, so every batch size is a
new query string for the driver to parse (psycopg's client-side parse of a
long statement measured at ~1.5 ms) and for PostgreSQL to plan.  Passing one
array per column to ``unnest`` keeps the statement constant: it is parsed
once, and a batch of 1 or of 1,000 costs one round trip.
"""

from __future__ import annotations

from collections.abc import Sequence


def columns(rows: Sequence[Sequence[object]], width: int) -> list[list[object]]:
    """Rows to one list per column (the arrays ``unnest`` takes)."""
    if not rows:
        return [[] for _ in range(width)]
    return [list(column) for column in zip(*rows, strict=True)]


def unnest(types: Sequence[str]) -> str:
    """``unnest(%s::t1[], %s::t2[], ...)`` for the column types ``types``."""
    return "unnest(" + ", ".join(f"%s::{sql_type}[]" for sql_type in types) + ")"
