"""schemathesis against the OpenAPI schema (/api/schema), in-process, with two users: no 5xx, every 4xx in our shape.

Every operation of the schema gets schema-valid cases (positive) and cases
that break the schema (negative), sent through Django's real WSGI handler
with all middleware: session cookie and CSRF token as a browser sends them,
real PostgreSQL and Redis.  Alice fuzzes while Bob owns orders, trades and
a key, so ids the fuzzer hits may be his (they must stay not-found).

Checks on every response: schemathesis's ``not_a_server_error`` and, for
2xx answers, ``response_schema_conformance`` (the body matches the schema);
for every 4xx, the body is the documented error shape ``{"code", "message",
"details"}`` (exchange_site.api).  Failures are collected, not raised, so one
run lists all of them.  Examples are few and derandomized so the run is
repeatable and stays well under a minute on two cores; raise
``SCHEMATHESIS_EXAMPLES`` to fuzz harder.
"""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from decimal import Decimal

import pytest
import schemathesis
from django.core.wsgi import get_wsgi_application
from django.utils.crypto import get_random_string
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from rest_framework.test import APIClient
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import response_schema_conformance

from accounts.models import ApiKey
from accounts.services import api_key_create
from orders.models import Order
from tests.engine_driver import EngineDriver
from tests.factories import place_limit

EXAMPLES = int(os.environ.get("SCHEMATHESIS_EXAMPLES", "25"))
MODES = (schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE)


def error_shape_problem(status: int, content: bytes) -> str | None:
    """Why a 4xx body is not ``{"code": str, "message": str, "details": dict}``, or None when it is."""
    try:
        body = json.loads(content)
    except ValueError:
        return f"{status} body is not JSON: {content[:120]!r}"
    if not isinstance(body, dict):
        return f"{status} body is not an object: {body!r:.120}"
    if not (isinstance(body.get("code"), str) and body["code"] and isinstance(body.get("message"), str)):
        return f"{status} body lacks code/message: {body!r:.200}"
    if not isinstance(body.get("details", {}), dict):
        return f"{status} details is not an object: {body!r:.200}"
    return None


def browser_credentials(user) -> tuple[dict[str, str], dict[str, str]]:
    """A logged-in browser's cookies (session, CSRF) and CSRF header, as the trading page sends them."""
    client = APIClient()
    client.force_login(user)
    csrf = get_random_string(32)
    return {"sessionid": client.cookies["sessionid"].value, "csrftoken": csrf}, {"X-CSRFToken": csrf}


def _steered(value: object, choices: list) -> object:
    """Half of the generated values (chosen by the value itself, so runs repeat) become one of ``choices``."""
    if isinstance(value, bool) or not choices:
        return value
    if isinstance(value, int) and value % 2 == 0:
        return choices[(value // 2) % len(choices)]
    if isinstance(value, str) and len(value) % 2 == 0:
        return choices[len(value) // 2 % len(choices)]
    return value


def steer(schema, *, order_ids: list[int], key_ids: list[int]) -> None:
    """Point half the generated ids and symbols at objects that exist (Alice's and Bob's), so cases get past
    "not found" into the code behind it; the other half stay random.  Generated credentials are dropped:
    every request carries Alice's real session (``browser_credentials``)."""
    markets = ["BTC_USDT"]
    client_ids = ["alice-1", "bob-1"]

    @schema.hook
    def map_path_parameters(context, path_parameters):
        params = dict(path_parameters or {})
        choices = {"symbol": markets, "order_id": order_ids, "key_id": key_ids, "client_order_id": client_ids}
        return {name: _steered(value, choices.get(name, [])) for name, value in params.items()}

    @schema.hook
    def map_query(context, query):
        query = dict(query or {})
        if "market" in query:
            query["market"] = _steered(query["market"], markets)
        return query

    @schema.hook
    def map_body(context, body):
        items = body.get("orders") if isinstance(body, dict) else None
        for item in [body, *(items if isinstance(items, list) else [])]:
            if isinstance(item, dict) and "market" in item:
                item["market"] = _steered(item["market"], markets)
        if isinstance(body, dict) and isinstance(body.get("order_ids"), list):
            body["order_ids"] = [_steered(value, order_ids) for value in body["order_ids"]]
        return body

    @schema.hook
    def map_headers(context, headers):
        return {k: v for k, v in (headers or {}).items() if k.lower() != "x-api-key"}

    @schema.hook
    def map_cookies(context, cookies):
        return {k: v for k, v in (cookies or {}).items() if k != "sessionid"}


@pytest.mark.django_db(transaction=True)
def test_schemathesis_no_5xx_and_every_4xx_in_the_error_shape(market, alice, bob, record_property):
    # Bob's world: live and filled orders, a trade with Alice, a key.  Alice has orders too.
    place_limit(bob, market, "buy", "0.5", "90", client_order_id="bob-1")
    place_limit(bob, market, "sell", "0.2", "120")
    place_limit(alice, market, "buy", "0.2", "120", client_order_id="alice-1")
    place_limit(alice, market, "sell", "0.3", "150")
    EngineDriver([market]).drain()
    api_key_create(user=bob, label="bob")
    bob_state = list(Order.objects.filter(user=bob).order_by("pk").values_list("pk", "status", "cancel_requested_at"))

    schema = schemathesis.openapi.from_wsgi("/api/schema", get_wsgi_application())
    steer(
        schema,
        order_ids=list(Order.objects.values_list("pk", flat=True)),
        key_ids=list(ApiKey.objects.values_list("pk", flat=True)),
    )
    cookies, headers = browser_credentials(alice)
    tried: Counter[str] = Counter()
    statuses: Counter[int] = Counter()
    failures: list[str] = []
    unbreakable: list[str] = []
    started = time.monotonic()

    def send(case, operation, mode) -> None:
        if os.environ.get("SCHEMATHESIS_DEBUG"):
            print(
                "CASE", case.method, case.formatted_path, case.headers, case.cookies, case.query, str(case.body)[:200]
            )
        response = case.call(headers=headers, cookies=cookies)
        tried[operation.label] += 1
        statuses[response.status_code] += 1
        where = f"{case.method} {case.formatted_path} ({mode.value}) -> {response.status_code}"
        checks = [not_a_server_error, *([response_schema_conformance] if response.status_code < 300 else [])]
        try:
            case.validate_response(response, checks=checks)
        except (AssertionError, FailureGroup) as failure:
            failures.append(f"{where}: {' '.join(str(failure).split())[:300]}")
            return
        if 400 <= response.status_code < 500:
            problem = error_shape_problem(response.status_code, response.content)
            if problem:
                failures.append(f"{where}: {problem}")

    def fuzzer(operation, mode):
        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            database=None,
            derandomize=True,
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        def fuzz(case) -> None:
            send(case, operation, mode)

        return fuzz

    for result in schema.get_all_operations():
        operation = result.ok()
        for mode in MODES:
            try:
                fuzzer(operation, mode)()
            except Unsatisfiable:
                # No way to break the schema of this operation (no parameters, no body): nothing to send.
                unbreakable.append(operation.label)

    elapsed = time.monotonic() - started
    total = sum(tried.values())
    record_property("schemathesis", f"{len(tried)} operations, {total} requests, {elapsed:.1f} s, {dict(statuses)}")
    print(f"\nschemathesis: {len(tried)} operations, {total} requests in {elapsed:.1f} s; statuses {dict(statuses)}")
    print(f"no negative cases possible for: {unbreakable}")
    assert failures == [], "\n".join(failures[:30])
    assert len(tried) >= 22  # every operation of the schema ran
    # Whatever Alice sent, Bob's orders and key are as they were.
    assert bob_state == list(
        Order.objects.filter(user=bob).order_by("pk").values_list("pk", "status", "cancel_requested_at")
    )
    assert ApiKey.objects.get(user=bob).revoked_at is None
    assert Decimal(0) <= sum(o.filled_quantity for o in Order.objects.all())
