"""Trades and candles become TimescaleDB hypertables, when (and only when) the extension is installed.

Production (``docker-compose.yml``) runs the ``timescale/timescaledb`` image,
whose init scripts create the extension in the application's database; the
embedded PostgreSQL of development and CI has no TimescaleDB.  The same
migrations serve both, so this one decides from the catalog:

- ``pg_extension`` lists ``timescaledb``: the extension exists in this
  database, so convert.  Being *available* (``pg_available_extensions``) is not
  enough: ``CREATE EXTENSION`` is FATAL unless the library is preloaded, and
  creating extensions is the operator's choice (and right), not a migration's.
- Otherwise: do nothing.  The tables stay ordinary and every query works the
  same (the code uses ``date_bin``, never ``time_bucket``).

It never tries and catches: a failed statement aborts the migration's
transaction, and a half-converted schema must not be possible.

``create_hypertable`` requires the time column in every unique key of the
table.  ``marketdata_kline``'s key already is (market, interval, open_time).
``orders_trade`` has ``id`` as its primary key and the unique
(market, trade_id): both get ``executed_at`` appended, on TimescaleDB only
(see docs/decisions/006-timescaledb-optional.md for what that costs).
``migrate_data => true`` moves rows already there into chunks.

The decision is taken once, when this migration is applied.  A database that
gets the extension later is converted by running ``hypertable_statements()``
by hand (it is what this migration runs).
"""

from django.db import migrations

TRADE_TABLE = "orders_trade"
TRADE_PRIMARY_KEY = "orders_trade_pkey"
TRADE_UNIQUE = "trade_id_unique_per_market"
KLINE_TABLE = "marketdata_kline"


def timescaledb_installed(cursor) -> bool:
    cursor.execute("SELECT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'timescaledb')")
    return cursor.fetchone()[0]


def key_statements() -> list[str]:
    """Put ``executed_at`` into every unique key of ``orders_trade`` (plain SQL: runs on any PostgreSQL)."""
    return [
        f"ALTER TABLE {TRADE_TABLE} DROP CONSTRAINT {TRADE_PRIMARY_KEY}",
        f"ALTER TABLE {TRADE_TABLE} ADD CONSTRAINT {TRADE_PRIMARY_KEY} PRIMARY KEY (id, executed_at)",
        f"ALTER TABLE {TRADE_TABLE} DROP CONSTRAINT {TRADE_UNIQUE}",
        f"ALTER TABLE {TRADE_TABLE} ADD CONSTRAINT {TRADE_UNIQUE} UNIQUE (market_id, trade_id, executed_at)",
    ]


def hypertable_statements() -> list[str]:
    """Everything this migration runs on a database with TimescaleDB, in order."""
    return [
        *key_statements(),
        f"SELECT create_hypertable('{TRADE_TABLE}', by_range('executed_at'), migrate_data => true)",
        f"SELECT create_hypertable('{KLINE_TABLE}', by_range('open_time'), migrate_data => true)",
    ]


def convert(apps, schema_editor) -> None:
    with schema_editor.connection.cursor() as cursor:
        if not timescaledb_installed(cursor):
            return
        for statement in hypertable_statements():
            cursor.execute(statement)


class Migration(migrations.Migration):
    dependencies = [
        ("marketdata", "0001_initial"),
        ("orders", "0003_trade_market_time_idx"),
    ]

    # No reverse: turning a hypertable back into a plain table is a dump and restore, not a migration.
    operations = [migrations.RunPython(convert, migrations.RunPython.noop, elidable=False)]
