"""House rules as checks: cheap tests that keep the layering honest."""

from __future__ import annotations

import re
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command

ROOT = Path(__file__).resolve().parent.parent
APPS = ("accounts", "markets", "orders", "marketdata", "matching", "exchange_site")


def source_files():
    for app in APPS:
        for path in (ROOT / app).rglob("*.py"):
            if "tests" not in path.parts and "migrations" not in path.parts:
                yield path


def test_only_accounts_services_writes_balances_or_the_ledger():
    writes = re.compile(
        r"(UPDATE|INSERT INTO|COPY)\s+accounts_(balance|ledgerentry)|"
        r"(Balance|LedgerEntry)\.objects\.(create|update|bulk_create|bulk_update|get_or_create|update_or_create)|"
        r"\.objects\.filter\([^)]*\)\.update\(\s*(available|locked)"
    )
    offenders = [
        str(path.relative_to(ROOT))
        for path in source_files()
        if path != ROOT / "accounts" / "services.py" and writes.search(path.read_text())
    ]
    assert offenders == []


@pytest.mark.django_db
def test_migrations_match_the_models():
    call_command("makemigrations", "--check", "--dry-run", stdout=StringIO())


@pytest.mark.django_db
def test_the_openapi_schema_builds_and_documents_the_order_api(client):
    response = client.get("/api/schema", HTTP_ACCEPT="application/json")
    assert response.status_code == 200
    schema = response.json()
    assert {"/api/v1/orders", "/api/v1/orders/{order_id}", "/api/v1/account/balances"} <= set(schema["paths"])
    assert client.get("/api/docs").status_code == 200


def test_the_openapi_schema_is_valid_and_generates_without_warnings(tmp_path):
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(tmp_path / "schema.yml"))


def test_every_procfile_process_names_something_that_exists():
    from django.core.management import get_commands

    for line in (ROOT / "Procfile").read_text().splitlines():
        name, _, command = line.partition(":")
        words = command.split()
        if "manage.py" in words:
            assert words[words.index("manage.py") + 1] in get_commands(), name
        if words[0] == "gunicorn":
            assert (ROOT / words[words.index("-c") + 1]).exists(), name
        for word in words:
            if word.startswith("exchange_site.") and ":" in word:
                module, _, attribute = word.partition(":")
                assert getattr(__import__(module, fromlist=[attribute]), attribute), name
