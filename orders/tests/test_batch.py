"""Batch placement and batch cancel: each order stands or falls on its own; accepted ones commit together."""

from __future__ import annotations

from decimal import Decimal

import pytest
from rest_framework.test import APIClient

from accounts.models import Balance, LedgerEntry
from exchange_site.redis import get_redis
from orders import streams
from orders.models import Order
from tests.invariants import assert_exchange_invariants

D = Decimal


def client_for(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def limit(side="buy", price="100", quantity="1", **extra) -> dict:
    return {"market": "BTC_USDT", "side": side, "type": "limit", "price": price, "quantity": quantity, **extra}


@pytest.mark.django_db
def test_each_order_of_a_batch_is_accepted_or_refused_on_its_own(market, alice, usdt, engine):
    batch = [
        limit(price="100", client_order_id="a1"),
        limit(price="100.005"),
        {**limit(), "market": "NOPE_USDT"},
        limit(quantity="5000"),  # 500,000 USDT: more than alice has
        limit(side="sell", price="120", quantity="2", client_order_id="a2"),
        limit(price="99", client_order_id="a1"),
        limit(side="up"),
    ]
    response = client_for(alice).post("/api/v1/orders/batch", {"orders": batch}, format="json")
    assert response.status_code == 200
    results = response.json()["results"]
    assert [r["status"] for r in results] == [201, 400, 404, 400, 201, 409, 400]
    assert [r.get("error", {}).get("code") for r in results] == [
        None, "price_not_on_tick", "unknown_market", "insufficient_funds", None, "duplicate_client_order_id",
        "invalid_request",
    ]  # fmt: skip
    assert results[0]["order"]["status"] == "pending" and results[4]["order"]["client_order_id"] == "a2"
    assert Order.objects.filter(user=alice).count() == 2
    assert Balance.objects.get(user=alice, asset=usdt).locked == D(100)
    assert LedgerEntry.objects.filter(user=alice, reason="order_lock").count() == 4
    engine.drain()
    assert set(Order.objects.filter(user=alice).values_list("status", flat=True)) == {"open"}
    assert_exchange_invariants(engine)


@pytest.mark.django_db
def test_a_batch_reusing_an_existing_client_order_id_refuses_only_that_order(market, alice):
    client = client_for(alice)
    assert client.post("/api/v1/orders", limit(client_order_id="mine"), format="json").status_code == 201
    results = client.post(
        "/api/v1/orders/batch", {"orders": [limit(client_order_id="mine"), limit(price="99")]}, format="json"
    ).json()["results"]
    assert [r["status"] for r in results] == [409, 201]
    assert Order.objects.filter(user=alice).count() == 2
    assert_exchange_invariants()


@pytest.mark.django_db
@pytest.mark.parametrize("size", [0, 21])
def test_a_batch_must_hold_one_to_twenty_orders(market, alice, size):
    response = client_for(alice).post("/api/v1/orders/batch", {"orders": [limit()] * size}, format="json")
    assert response.status_code == 400 and response.json()["code"] == "invalid_request"
    assert not Order.objects.exists()


@pytest.mark.django_db
def test_batch_cancel_reports_each_order(market, alice, bob, engine):
    mine = [client_for(alice).post("/api/v1/orders", limit(price=p), format="json").json()["id"] for p in ("90", "91")]
    theirs = client_for(bob).post("/api/v1/orders", limit(price="92"), format="json").json()["id"]
    engine.drain()
    client_for(alice).delete(f"/api/v1/orders/{mine[1]}")
    engine.drain()
    response = client_for(alice).post(
        "/api/v1/orders/cancel-batch", {"order_ids": [mine[0], theirs, mine[1], 10**9]}, format="json"
    )
    results = response.json()["results"]
    assert [r["status"] for r in results] == [202, 404, 409, 404]
    assert results[0]["order"]["cancel_requested"] is True
    engine.drain()
    assert Order.objects.get(pk=mine[0]).status == "cancelled"
    assert Order.objects.get(pk=theirs).status == "open"
    assert_exchange_invariants(engine)


@pytest.mark.django_db(transaction=True)
def test_accepted_orders_reach_the_stream_after_commit(market, alice):
    batch = [limit(price=str(90 + i)) for i in range(5)] + [limit(price="0.001")]
    results = client_for(alice).post("/api/v1/orders/batch", {"orders": batch}, format="json").json()["results"]
    accepted = [r["order"]["id"] for r in results if r["status"] == 201]
    assert len(accepted) == 5
    entries = get_redis().xrange(streams.stream_key("BTC_USDT"))
    assert [int(fields[b"o"]) for _, fields in entries] == accepted


@pytest.mark.django_db
def test_a_refused_order_does_not_stop_later_smaller_ones_in_the_same_asset(market, alice, usdt):
    batch = [limit(quantity="990"), limit(quantity="20"), limit(quantity="5")]  # at 100 USDT: 99,000, 2,000, 500
    results = client_for(alice).post("/api/v1/orders/batch", {"orders": batch}, format="json").json()["results"]
    assert [r["status"] for r in results] == [201, 400, 201]
    assert results[1]["error"]["code"] == "insufficient_funds"
    balance = Balance.objects.get(user=alice, asset=usdt)
    assert (balance.available, balance.locked) == (D(500), D(99_500))
    assert_exchange_invariants()
