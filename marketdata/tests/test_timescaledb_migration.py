"""The TimescaleDB migration: a no-op on plain PostgreSQL, and the SQL it runs where the extension exists."""

from __future__ import annotations

import importlib

import pytest
from django.db import connection, transaction

pytestmark = pytest.mark.django_db

migration = importlib.import_module("marketdata.migrations.0002_timescaledb_hypertables")


def key_columns(table: str) -> dict[str, list[str]]:
    """Every primary key and unique constraint of ``table``: name -> its columns in order."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.conname, array_agg(a.attname ORDER BY k.ord)"
            " FROM pg_constraint AS c"
            " CROSS JOIN LATERAL unnest(c.conkey) WITH ORDINALITY AS k(attnum, ord)"
            " JOIN pg_attribute AS a ON a.attrelid = c.conrelid AND a.attnum = k.attnum"
            " WHERE c.conrelid = %s::regclass AND c.contype IN ('p', 'u')"
            " GROUP BY c.conname",
            [table],
        )
        return dict(cursor.fetchall())


def test_on_plain_postgresql_the_tables_stay_ordinary():
    with connection.cursor() as cursor:
        assert migration.timescaledb_installed(cursor) is False
        # No TimescaleDB catalog at all, so nothing can be a hypertable.
        cursor.execute("SELECT to_regclass('_timescaledb_catalog.hypertable')")
        assert cursor.fetchone()[0] is None
        # Both tables are plain heap tables, not partitioned ones.
        cursor.execute(
            "SELECT relname, relkind FROM pg_class WHERE relname IN ('orders_trade', 'marketdata_kline') ORDER BY 1"
        )
        assert cursor.fetchall() == [("marketdata_kline", "r"), ("orders_trade", "r")]
    assert key_columns("orders_trade") == {
        "orders_trade_pkey": ["id"],
        "trade_id_unique_per_market": ["market_id", "trade_id"],
    }
    assert key_columns("marketdata_kline") == {"marketdata_kline_pkey": ["market_id", "interval", "open_time"]}


def test_with_timescaledb_both_tables_become_hypertables_keeping_their_rows():
    statements = migration.hypertable_statements()
    assert statements[-2:] == [
        "SELECT create_hypertable('orders_trade', by_range('executed_at'), migrate_data => true)",
        "SELECT create_hypertable('marketdata_kline', by_range('open_time'), migrate_data => true)",
    ]
    assert statements[:-2] == migration.key_statements()


def test_the_key_statements_put_the_time_column_in_every_unique_key_of_orders_trade():
    """They are plain SQL: run them here, check the catalog, and roll back."""

    class RollBack(Exception):
        pass

    with pytest.raises(RollBack), transaction.atomic(), connection.cursor() as cursor:
        for statement in migration.key_statements():
            cursor.execute(statement)
        changed = key_columns("orders_trade")
        raise RollBack
    assert changed == {
        "orders_trade_pkey": ["id", "executed_at"],
        "trade_id_unique_per_market": ["market_id", "trade_id", "executed_at"],
    }
    assert key_columns("orders_trade")["orders_trade_pkey"] == ["id"]  # rolled back
    # Every unique key of the kline table already holds its time column.
    assert all("open_time" in columns for columns in key_columns("marketdata_kline").values())
