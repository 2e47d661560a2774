"""Races on real connections: many writers at once never overdraw, unlock twice or duplicate.

These tests commit for real (``transaction=True``) and each thread has its
own database connection, closed in ``finally``.  Where the engine takes part
it runs its real loop in a thread of its own (``EngineThread``), racing the
writers rather than waiting for them.
"""

from __future__ import annotations

from collections import Counter
from decimal import Decimal

import pytest

from accounts import services as money
from accounts.models import Balance, LedgerEntry
from accounts.selectors import external_user_id
from exchange_site.errors import ApplicationError
from exchange_site.redis import get_redis
from orders import services, streams
from orders.models import Order
from tests import figures
from tests.engine_driver import EngineThread, settled
from tests.factories import UserFactory, fund, place_limit
from tests.invariants import assert_exchange_invariants
from tests.threads import run_threads

pytestmark = pytest.mark.django_db(transaction=True)


def test_concurrent_orders_never_lock_more_than_the_user_has(market, usdt):
    trader = UserFactory(username="racer")
    fund(trader, usdt, Decimal(1000))
    request = services.OrderRequest(side="buy", type="limit", price=Decimal(100), quantity=Decimal("0.1"))

    def place_ten(_: int):
        for _ in range(10):
            try:
                services.place_order(user=trader, market=market, request=request)
                yield "placed"
            except ApplicationError as refusal:
                yield refusal.code

    outcomes = run_threads(16, place_ten)
    assert outcomes == Counter(placed=100, insufficient_funds=60)
    balance = Balance.objects.get(user=trader, asset=usdt)
    assert (balance.available, balance.locked) == (0, Decimal(1000))
    assert Order.objects.filter(user=trader).count() == 100
    assert_exchange_invariants()


def test_concurrent_withdrawals_pay_out_exactly_the_balance(usdt):
    saver = UserFactory(username="saver")
    fund(saver, usdt, Decimal(10))

    def withdraw_ten(_: int):
        for _ in range(10):
            try:
                money.withdraw(user=saver, asset=usdt, amount=Decimal(1))
                yield "paid"
            except ApplicationError as refusal:
                yield refusal.code

    outcomes = run_threads(16, withdraw_ten)
    assert outcomes == Counter(paid=10, insufficient_funds=150)
    assert Balance.objects.get(user=saver, asset=usdt).available == 0
    # Exactly ten movements reached the ledger, and the outside world received exactly 10.
    paid = LedgerEntry.objects.filter(reason=LedgerEntry.Reason.WITHDRAWAL, user=saver)
    assert [entry.amount for entry in paid] == [Decimal(-1)] * 10
    out = LedgerEntry.objects.filter(reason=LedgerEntry.Reason.WITHDRAWAL, user_id=external_user_id())
    assert sum(entry.amount for entry in out) == Decimal(10)
    assert_exchange_invariants()


def unlocks(order: Order) -> list[Decimal]:
    """What the engine released from ``order``'s locked funds, one amount per release."""
    return list(
        LedgerEntry.objects.filter(order=order, reason=LedgerEntry.Reason.ORDER_UNLOCK, bucket="locked")
        .order_by("pk")
        .values_list("amount", flat=True)
    )


def cancel(user, order_id: int):
    def work(_: int):
        try:
            services.request_cancel(user=user, order_id=order_id)
            yield "accepted"
        except ApplicationError as refusal:
            yield refusal.code

    return work


def test_twenty_concurrent_cancels_of_one_order_unlock_its_rest_once(market, alice, bob, btc):
    with EngineThread([market]) as running:
        ask = place_limit(alice, market, "sell", "1", "100")
        place_limit(bob, market, "buy", "0.3", "100")
        running.wait_until(settled, timeout=10)
        outcomes = run_threads(20, cancel(alice, ask.id))  # while the engine is reading the stream
        running.wait_until(settled, timeout=10)

    # Each request either got in while the order was live (and was streamed) or was
    # told it no longer is; the engine cancelled once, whatever the number of entries.
    assert set(outcomes) <= {"accepted", "order_not_cancellable"} and outcomes["accepted"] >= 1
    assert sum(outcomes.values()) == 20
    stream = get_redis().xrange(streams.stream_key(market.symbol))
    assert sum(fields[b"c"] == b"cancel" for _, fields in stream) == outcomes["accepted"]
    ask.refresh_from_db()
    assert (ask.status, ask.filled_quantity, ask.locked_amount) == (Order.Status.CANCELLED, Decimal("0.3"), 0)
    assert unlocks(ask) == [Decimal("-0.7")]
    assert Balance.objects.get(user=alice, asset=btc).locked == 0
    assert_exchange_invariants(running)
    figures.report("twenty_cancels", {"threads": 20, "outcomes": dict(outcomes), "unlocks": len(unlocks(ask))})


@pytest.mark.parametrize("take", ["0.4", "1"])
def test_a_cancel_racing_the_fill_of_its_order_ends_it_once(market, alice, bob, btc, take):
    rounds = 12
    # Every round may sell the whole 1 BTC (the fill wins): hold enough for all of them,
    # beyond the fixture's 10 (the fill winning ten times in a row once failed this test).
    fund(alice, btc, Decimal(rounds))
    seen: Counter = Counter()
    with EngineThread([market]) as running:
        for _ in range(rounds):
            ask = place_limit(alice, market, "sell", "1", "100")
            running.wait_until(settled, timeout=10)

            def race(index: int, ask_id: int = ask.id):
                if index == 0:
                    place_limit(bob, market, "buy", take, "100", time_in_force="ioc")
                    yield "taken"
                else:
                    yield from cancel(alice, ask_id)(index)

            run_threads(2, race)
            running.wait_until(settled, timeout=10)
            ask.refresh_from_db()
            # One terminal state, and what it did not sell released once (or never, if filled).
            rest = Decimal(1) - ask.filled_quantity
            assert ask.status in (Order.Status.FILLED, Order.Status.CANCELLED)
            assert ask.locked_amount == 0
            assert unlocks(ask) == ([-rest] if rest else [])
            assert (ask.status == Order.Status.FILLED) == (rest == 0)
            seen[(ask.status, str(ask.filled_quantity.normalize()))] += 1
        assert_exchange_invariants(running)
    figures.report(
        f"cancel_racing_fill_{take}",
        {"rounds": sum(seen.values()), "outcomes": {f"{status} {filled}": n for (status, filled), n in seen.items()}},
    )


def test_the_same_client_order_id_sent_twenty_times_at_once_makes_one_order(market, usdt):
    trader = UserFactory(username="twice")
    fund(trader, usdt, Decimal(10_000))
    single = services.OrderRequest(
        side="buy", type="limit", price=Decimal(100), quantity=Decimal(1), client_order_id="same-1"
    )
    batched = services.OrderRequest(
        side="buy", type="limit", price=Decimal(100), quantity=Decimal(1), client_order_id="same-2"
    )

    def place_both(index: int):
        try:
            if index % 2:
                services.place_order(user=trader, market=market, request=single)
                yield "single placed"
            else:
                (result,) = services.place_orders(user=trader, requests=[(market, batched)])
                if isinstance(result, ApplicationError):
                    raise result
                yield "batch placed"
        except ApplicationError as refusal:
            yield refusal.code

    outcomes = run_threads(40, place_both)  # 20 of each, all at once
    assert outcomes == Counter({"single placed": 1, "batch placed": 1, "duplicate_client_order_id": 38})
    assert sorted(Order.objects.filter(user=trader).values_list("client_order_id", flat=True)) == ["same-1", "same-2"]
    assert Balance.objects.get(user=trader, asset=usdt).locked == Decimal(200)  # held once per order
    assert_exchange_invariants()
