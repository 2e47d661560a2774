"""Races on real connections: many writers at once never overdraw a balance.

These tests commit for real (``transaction=True``) and each thread has its
own database connection, closed in ``finally``.
"""

from __future__ import annotations

import threading
from collections import Counter
from decimal import Decimal

import pytest
from django.db import connection

from accounts import services as money
from accounts.models import Balance
from exchange_site.errors import ApplicationError
from orders import services
from orders.models import Order
from tests.factories import UserFactory, fund
from tests.invariants import assert_exchange_invariants

pytestmark = pytest.mark.django_db(transaction=True)


def run_threads(count: int, work) -> Counter:
    """Start ``count`` threads on ``work`` at the same moment; count their outcomes."""
    outcomes: Counter = Counter()
    lock = threading.Lock()
    barrier = threading.Barrier(count)

    def worker(index: int) -> None:
        try:
            barrier.wait()
            for result in work(index):
                with lock:
                    outcomes[result] += 1
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return outcomes


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
    assert_exchange_invariants()
