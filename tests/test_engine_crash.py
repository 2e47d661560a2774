"""Crash safety: the real ``run_engine`` process, killed with SIGKILL mid-stream, then restarted.

Orders go in through the REST API (real commits, real XADDs) while the engine
runs; the engine is killed without warning, restarted, and drained.  Every
order must end in one consistent state, no trade may be applied twice, and
all money invariants must hold.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from decimal import Decimal
from urllib.parse import urlsplit, urlunsplit

import pytest
from django.conf import settings
from django.db import connection
from django.db.models import Count, Q, Sum
from rest_framework.test import APIClient

from accounts.models import LedgerEntry
from orders.models import Order, Trade
from tests.factories import UserFactory, fund
from tests.invariants import assert_exchange_invariants

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def start_engine() -> subprocess.Popen:
    # The same server as this test process, but its test database.
    url = urlsplit(os.environ["DATABASE_URL"])._replace(path="/" + connection.settings_dict["NAME"])
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "exchange_site.settings.test",
        "DATABASE_URL": urlunsplit(url),
        "REDIS_URL": settings.REDIS_URL,
        "LOG_LEVEL": "WARNING",
    }
    return subprocess.Popen(
        [sys.executable, "manage.py", "run_engine", "--batch-size", "20"],
        cwd=settings.BASE_DIR,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def wait_until(condition, timeout: float, what: str, engine: subprocess.Popen) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if engine.poll() is not None:
            raise AssertionError(f"the engine exited ({engine.returncode}): {engine.stderr.read().decode()[-3000:]}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def settled() -> bool:
    owed = Q(status=Order.Status.PENDING) | Q(status__in=Order.LIVE_STATUSES, cancel_requested_at__isnull=False)
    return not Order.objects.filter(owed).exists()


def test_engine_killed_mid_stream_recovers_without_loss_or_double_apply(market, btc, usdt):
    rng = random.Random(7)
    traders = [UserFactory(username=f"crash{i}") for i in range(4)]
    clients = []
    for trader in traders:
        fund(trader, btc, Decimal(50))
        fund(trader, usdt, Decimal(500_000))
        client = APIClient()
        client.force_authenticate(trader)
        clients.append(client)

    def send(count: int) -> None:
        for _ in range(count):
            client = rng.choice(clients)
            if rng.random() < 0.15:
                mine = client.get("/api/v1/orders/open", {"market": "BTC_USDT"}).json()
                if mine:
                    client.delete(f"/api/v1/orders/{rng.choice(mine)['id']}")
                    continue
            side = rng.choice(["buy", "sell"])
            body = {"market": "BTC_USDT", "side": side, "type": "limit", "quantity": str(rng.randint(1, 40) / 100),
                    "price": str(100 + rng.randint(-4, 4) / 10)}  # fmt: skip
            if rng.random() < 0.1:
                body = {"market": "BTC_USDT", "side": "sell", "type": "market", "quantity": "0.05"}
            response = client.post("/api/v1/orders", body, format="json")
            assert response.status_code in (201, 400), response.content

    engine = start_engine()
    try:
        send(150)
        wait_until(lambda: Trade.objects.count() >= 5, 30, "the engine to trade", engine)
        send(100)  # still arriving while the engine is killed
        engine.send_signal(signal.SIGKILL)
        engine.wait(10)
        send(100)  # accepted while no engine runs: PENDING, in the stream
        assert Order.objects.filter(status=Order.Status.PENDING).exists()
        engine = start_engine()
        wait_until(settled, 60, "the restarted engine to settle every order", engine)
    finally:
        engine.send_signal(signal.SIGTERM)
        try:
            _, stderr = engine.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            engine.kill()
            raise
    assert engine.returncode == 0, stderr.decode()[-2000:]

    assert Order.objects.count() > 250
    # No trade applied twice: ids unique and contiguous (constraint + invariant),
    # and each order's fills equal the trades that name it.
    for order in Order.objects.filter(filled_quantity__gt=0):
        traded = Trade.objects.filter(Q(buy_order=order) | Q(sell_order=order)).aggregate(q=Sum("quantity"))["q"]
        assert traded == order.filled_quantity, f"order {order.pk}"
    per_trade = LedgerEntry.objects.filter(reason="trade").values("trade_id").annotate(n=Count("id"))
    assert {row["n"] for row in per_trade} <= {4}  # buyer, seller: one debit and one credit each
    assert_exchange_invariants()
