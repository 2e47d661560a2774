"""The headline run: a random order flow through the real path, API -> Redis -> engine -> PostgreSQL.

50 users with API keys (40 funded well, 10 thinly, so refusals happen too)
send limit, IOC, FOK, post-only and market orders, single cancels and
cancel-alls, from 8 client threads at once, signed, to gunicorn (the
production HTTP tier) while ``run_engine`` matches.  At the end, once the
engine owes nothing: every money invariant holds (exact conservation per
asset, no negative balance, no crossed book, locked == what live orders need
for every (user, asset), each order's ledger and trades agree with it), the
orders in the database are exactly the accepted ones, and the public depth
snapshot is the database's book.

``ADVERSARIAL_FULL=1`` sends 10,000 placements (``make adversarial``); the
suite sends 2,000.  Figures print as one JSON line (``-s`` to see it).
"""

from __future__ import annotations

import os
import random
import threading
import time
from collections import Counter, defaultdict
from decimal import Decimal

import pytest

from accounts.services import api_key_create
from orders.models import Order, Trade
from tests import figures
from tests.engine_driver import settled
from tests.factories import UserFactory, fund
from tests.invariants import assert_exchange_invariants
from tests.stack import HttpClient, LiveStack

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

FULL = os.environ.get("ADVERSARIAL_FULL") == "1"
PLACEMENTS = 10_000 if FULL else 2_000
USERS, RICH, CLIENTS = 50, 40, 8


def random_order(rng: random.Random, symbol: str, sequence: str) -> dict[str, str]:
    """One order body around 100.00: bids mostly below, asks mostly above, a third of limit orders crossing."""
    side = rng.choice(("buy", "sell"))
    body = {"market": symbol, "side": side, "client_order_id": sequence}
    roll = rng.random()
    quantity = f"{rng.randint(10, 500) / 1000:.3f}"
    if roll < 0.08:
        body |= {"type": "market", "quantity": quantity}
    elif roll < 0.14:
        body |= {"type": "market", "side": "buy", "quote_quantity": f"{rng.randint(100, 5000) / 100:.2f}"}
    else:
        offset = rng.randint(-30, 10) if side == "buy" else rng.randint(-10, 30)
        price = f"{100 + offset / 100:.2f}"
        body |= {"type": "limit", "price": price, "quantity": quantity}
        if roll < 0.26:
            body["type"] = "limit_maker"
        elif roll < 0.36:
            body["time_in_force"] = "ioc"
        elif roll < 0.40:
            body["time_in_force"] = "fok"
        if rng.random() < 0.1:
            body["stp_mode"] = rng.choice(("expire_taker", "expire_maker", "expire_both"))
    return body


class Flow:
    """Shared tallies of the client threads."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.sent = 0
        self.accepted: dict[int, dict] = {}
        self.outcomes: Counter = Counter()
        self.cancels: Counter = Counter()
        self.server_errors: list[tuple[int, object]] = []

    def take_ticket(self) -> int | None:
        with self.lock:
            if self.sent >= PLACEMENTS:
                return None
            self.sent += 1
            return self.sent


def client_thread(index: int, stack: LiveStack, users: list[tuple[str, str]], symbol: str, flow: Flow) -> None:
    rng = random.Random(1000 + index)
    clients = [HttpClient(stack, key=key, secret=secret) for key, secret in users]
    mine: dict[int, list[int]] = defaultdict(list)
    while True:
        who = rng.randrange(len(clients))
        client = clients[who]
        if mine[who] and rng.random() < 0.2:
            status, body = client.request("DELETE", f"/api/v1/orders/{mine[who].pop(rng.randrange(len(mine[who])))}")
            code = "accepted" if status == 202 else body.get("code", status)
        elif rng.random() < 0.005:
            status, body = client.request("POST", "/api/v1/orders/cancel-all", {"market": symbol})
            code = "cancel_all_accepted" if status == 202 else body.get("code", status)
        else:
            ticket = flow.take_ticket()
            if ticket is None:
                return
            order = random_order(rng, symbol, f"c{index}-{ticket}")
            status, body = client.request("POST", "/api/v1/orders", order)
            with flow.lock:
                if status == 201:
                    flow.accepted[body["id"]] = order
                    flow.outcomes["accepted"] += 1
                    mine[who].append(body["id"])
                else:
                    flow.outcomes[body.get("code", status) if isinstance(body, dict) else status] += 1
            if status >= 500:
                flow.server_errors.append((status, body))
            continue
        with flow.lock:
            flow.cancels[code] += 1
        if status >= 500:
            flow.server_errors.append((status, body))


def db_book(market) -> dict[str, dict[Decimal, Decimal]]:
    book: dict[str, dict[Decimal, Decimal]] = {"bids": defaultdict(Decimal), "asks": defaultdict(Decimal)}
    for side, price, quantity, filled in Order.objects.filter(
        market=market, status__in=(Order.Status.OPEN, Order.Status.PARTIALLY_FILLED)
    ).values_list("side", "price", "quantity", "filled_quantity"):
        book["bids" if side == "buy" else "asks"][price.normalize()] += quantity - filled
    return {side: {p: q.normalize() for p, q in levels.items()} for side, levels in book.items()}


def published_book(stack: LiveStack, market) -> dict[str, dict[Decimal, Decimal]]:
    depth = HttpClient(stack).get(f"/api/v1/markets/{market.symbol}/depth?limit=5000")
    return {s: {Decimal(p).normalize(): Decimal(q).normalize() for p, q in depth[s]} for s in ("bids", "asks")}


def wait_for_published_book(stack: LiveStack, market) -> None:
    """The public depth equals the database's book (the engine publishes just after its last commit)."""
    stack.wait_until(lambda: published_book(stack, market) == db_book(market), timeout=10, interval=0.2,
                     what="the published depth to equal the committed book")  # fmt: skip


def test_a_random_flow_through_the_real_api_keeps_every_invariant(market, btc, usdt):
    users = []
    for i in range(USERS):
        user = UserFactory(username=f"flow{i}")
        rich = i < RICH
        fund(user, btc, Decimal(100) if rich else Decimal("0.2"))
        fund(user, usdt, Decimal(100_000) if rich else Decimal(30))
        key, secret = api_key_create(user=user, label="flow")
        users.append((key.key, secret))
    flow = Flow()
    with LiveStack(web="gunicorn", engine=True) as stack:
        started = time.monotonic()
        threads = [
            threading.Thread(target=client_thread, args=(i, stack, users[i::CLIENTS], market.symbol, flow))
            for i in range(CLIENTS)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        sent_in = time.monotonic() - started
        stack.wait_until(settled, timeout=60, what="the engine to settle every accepted order")
        drained_in = time.monotonic() - started - sent_in
        wait_for_published_book(stack, market)  # the read model clients see is the committed book

    assert flow.server_errors == [], flow.server_errors[:5]
    assert flow.sent == PLACEMENTS
    # Only accepted orders exist; refused ones wrote nothing.
    assert set(Order.objects.values_list("pk", flat=True)) == set(flow.accepted)
    statuses = Counter(Order.objects.values_list("status", flat=True))
    assert Order.Status.PENDING not in statuses
    resting = Order.objects.filter(status__in=(Order.Status.OPEN, Order.Status.PARTIALLY_FILLED))
    assert not resting.exclude(type__in=("limit", "limit_maker")).exclude(time_in_force="gtc").exists()
    assert_exchange_invariants()

    trades = Trade.objects.count()
    assert trades > PLACEMENTS // 10, "the flow should trade"
    figures.report(
        "adversarial_flow",
        {
            "placements": flow.sent,
            "users": USERS,
            "clients": CLIENTS,
            "outcomes": dict(flow.outcomes.most_common()),
            "cancels": dict(flow.cancels.most_common()),
            "final_statuses": dict(statuses.most_common()),
            "trades": trades,
            "seconds_sending": round(sent_in, 1),
            "seconds_draining": round(drained_in, 1),
            "requests_per_s": round((flow.sent + sum(flow.cancels.values())) / sent_in),
            "lost": 0,
        },
    )


def test_the_same_client_order_id_sent_twenty_times_at_once_through_the_api_makes_one_order(market, usdt):
    user = UserFactory(username="dup")
    fund(user, usdt, Decimal(10_000))
    key, secret = api_key_create(user=user, label="dup")
    order = {"market": market.symbol, "side": "buy", "type": "limit", "price": "100", "quantity": "1",
             "client_order_id": "once"}  # fmt: skip
    barrier = threading.Barrier(20)
    answers: list[tuple[int, object]] = []
    with LiveStack(web="gunicorn", engine=False) as stack:
        client = HttpClient(stack, key=key.key, secret=secret)

        def send(index: int) -> None:
            barrier.wait()
            # Distinct windows give distinct signatures: all 20 pass the replay guard and race in order entry.
            answers.append(client.request("POST", "/api/v1/orders", order, recv_window=5000 + index))

        threads = [threading.Thread(target=send, args=(i,)) for i in range(20)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert sorted(status for status, _ in answers) == [201] + [409] * 19
    assert {body["code"] for status, body in answers if status == 409} == {"duplicate_client_order_id"}
    assert Order.objects.filter(user=user).count() == 1
    assert_exchange_invariants()
