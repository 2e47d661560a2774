"""The real-time contract end to end: daphne, the engine, Redis, PostgreSQL and a ``websockets`` client.

A client keeps a local order book by the documented procedure (subscribe,
REST snapshot, apply updates with ``u > lastUpdateId`` and no gap) while a
random flow of orders and cancels goes through the REST API; at the end its
book equals the one the engine committed, level for level, and the trades it
received are the trades in the database, in order, none missing.
"""

from __future__ import annotations

import asyncio
import json
import random
import threading
from decimal import Decimal

import pytest
import websockets

from accounts.services import api_key_create
from orders.models import Order, Trade
from tests.factories import UserFactory, fund
from tests.stack import HttpClient, LiveStack

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


class StreamRecorder:
    """A WebSocket client in its own thread: subscribes, then records every frame in arrival order."""

    def __init__(self, url: str, streams: list[str]) -> None:
        self.url, self.streams = url, streams
        self.frames: list[dict] = []
        self.subscribed = threading.Event()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)

    async def _run(self) -> None:
        async with websockets.connect(self.url) as ws:
            await ws.send(json.dumps({"method": "SUBSCRIBE", "params": self.streams, "id": 1}))
            while not self.stop.is_set():
                try:
                    raw = await asyncio.wait_for(ws.recv(), timeout=0.1)
                except TimeoutError:
                    continue
                message = json.loads(raw)
                if message.get("id") == 1:
                    assert message == {"result": None, "id": 1}, message
                    self.subscribed.set()
                else:
                    self.frames.append(message)

    def __enter__(self) -> StreamRecorder:
        self.thread.start()
        assert self.subscribed.wait(10), "no SUBSCRIBE reply"
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        self.thread.join(5)


def apply_depth(snapshot: dict, updates: list[dict]) -> dict[str, dict[Decimal, Decimal]]:
    """docs/realtime.md, "Keeping a local order book", steps 3 and 4."""
    book = {side: {Decimal(p): Decimal(q) for p, q in snapshot[side]} for side in ("bids", "asks")}
    last = snapshot["lastUpdateId"]
    kept = [u for u in updates if u["u"] > last]
    if kept:
        assert kept[0]["U"] <= last + 1 <= kept[0]["u"], "the first update does not continue the snapshot"
    for update in kept:
        if update["U"] > last + 1:
            raise AssertionError(f"gap in depth updates: {last} then {update['U']}")
        last = update["u"]
        for side, key in (("bids", "b"), ("asks", "a")):
            for price, qty in update[key]:
                if Decimal(qty):
                    book[side][Decimal(price)] = Decimal(qty)
                else:
                    book[side].pop(Decimal(price), None)
    return book


def db_book(market) -> dict[str, dict[Decimal, Decimal]]:
    book: dict[str, dict[Decimal, Decimal]] = {"bids": {}, "asks": {}}
    for side, price, qty, filled in Order.objects.filter(
        market=market, status__in=(Order.Status.OPEN, Order.Status.PARTIALLY_FILLED)
    ).values_list("side", "price", "quantity", "filled_quantity"):
        levels = book["bids" if side == "buy" else "asks"]
        levels[price] = levels.get(price, Decimal(0)) + qty - filled
    return book


def normalized(book):
    return {side: {p.normalize(): q.normalize() for p, q in levels.items()} for side, levels in book.items()}


def settled() -> bool:
    return (
        not Order.objects.filter(status=Order.Status.PENDING).exists()
        and not Order.objects.filter(status__in=Order.LIVE_STATUSES, cancel_requested_at__isnull=False).exists()
    )


def test_a_client_keeps_an_exact_local_book_and_sees_every_trade(market, btc, usdt):
    rng = random.Random(11)
    clients = []
    for i in range(3):
        user = UserFactory(username=f"ws{i}")
        fund(user, btc, Decimal(100))
        fund(user, usdt, Decimal(1_000_000))
        key, secret = api_key_create(user=user, label="stack")
        clients.append((key.key, secret))
    with LiveStack(web=True, engine=True) as stack:
        http = [HttpClient(stack, key=key, secret=secret) for key, secret in clients]
        with StreamRecorder(stack.ws_url(), [f"depth@{market.symbol}", f"trades@{market.symbol}"]) as recorder:
            for round_ in range(4):
                if round_ == 1:  # the snapshot is taken while orders flow
                    snapshot = http[0].get(f"/api/v1/markets/{market.symbol}/depth?limit=5000")
                for _ in range(40):
                    client = rng.choice(http)
                    order = {
                        "market": market.symbol,
                        "side": rng.choice(("buy", "sell")),
                        "type": "limit",
                        "price": f"{rng.randint(97, 103)}.{rng.randint(0, 9)}0",
                        "quantity": f"0.{rng.randint(20, 400):03d}",
                    }
                    status, body = client.request("POST", "/api/v1/orders", order)
                    assert status == 201, body
                    if rng.random() < 0.25:
                        client.request("DELETE", f"/api/v1/orders/{body['id']}")
            stack.wait_until(settled, timeout=30, what="the engine to settle every order")
            expected_trades = list(
                Trade.objects.filter(market=market).order_by("trade_id").values_list("trade_id", "price", "quantity")
            )
            final = http[0].get(f"/api/v1/markets/{market.symbol}/depth?limit=5000")

            def caught_up() -> bool:
                depth = [f["data"] for f in recorder.frames if f["stream"].startswith("depth@")]
                trades = [f for f in recorder.frames if f["stream"].startswith("trades@")]
                return bool(depth) and depth[-1]["u"] >= final["lastUpdateId"] and len(trades) >= len(expected_trades)

            stack.wait_until(caught_up, timeout=10, what="the client to receive every update")

    updates = [f["data"] for f in recorder.frames if f["stream"] == f"depth@{market.symbol}"]
    local = apply_depth(snapshot, updates)
    assert normalized(local) == normalized(db_book(market))
    assert normalized(local) == normalized(apply_depth(final, []))
    assert len(expected_trades) > 20, "the flow should trade"
    received = [f["data"] for f in recorder.frames if f["stream"] == f"trades@{market.symbol}"]
    assert [(t["t"], Decimal(t["p"]), Decimal(t["q"])) for t in received] == expected_trades


def test_policy_closes_reach_the_client_through_daphne(market):
    """daphne refuses some close codes from an application: the ones we use must arrive as sent."""

    async def oversized(url: str) -> tuple[dict, int]:
        async with websockets.connect(url) as ws:
            await ws.send(json.dumps({"method": "SUBSCRIBE", "params": ["x" * 5000], "id": 1}))
            error = json.loads(await ws.recv())
            try:
                await asyncio.wait_for(ws.recv(), timeout=5)
            except websockets.ConnectionClosed as closed:
                return error, closed.rcvd.code
        raise AssertionError("the connection stayed open")

    with LiveStack(web=True, engine=False) as stack:
        error, code = asyncio.run(oversized(stack.ws_url()))
    assert error["error"]["code"] == "frame_too_big"
    assert code == 4009
