"""Crash and replay: ``run_engine`` killed with SIGKILL at random moments under a flow, then compared with a replay.

Eight client threads place and cancel orders through the services (real
commits, real stream writes: the same calls the API makes) while the real
``run_engine`` process is killed without warning at 25 random moments (some
while it boots and recovers, most while it settles batches) and restarted at
once.  Once the flow stops and the engine has drained:

* every accepted order was written to the stream once and ended resting,
  filled, cancelled, expired or rejected exactly once; no trade id twice;
  every money invariant holds;
* **replay**: the same accepted orders, reset to the state order entry left
  them in (PENDING, holding their original funds: their ``order_lock`` ledger
  entries, every later entry removed, balances re-derived from the ledger, the
  engine's counters at zero), are replayed by a fresh in-process engine from
  the command stream, in stream order: placements and cancels at the very
  positions they were accepted in.  The result must equal the crashed run's:
  the same trades (ids, prices, quantities, orders, fees), the same final
  state of every order (book sequence included, so the same book), the same
  balances.  (All holds at once, before any trade, can overdraw an account
  whose later orders were paid for by its earlier trades, so each account is
  lent a float for the replay, deposited before and withdrawn after through
  the ledger.  The engine never reads available balances: the float cannot
  change an outcome.)

The stream is the order of acceptance: order entry writes each command after
its commit, and the engine processes commands in stream order, across crashes
too (decision 008).  Order ids alone are not that order: two clients commit in
one order and reach the stream in the other.

The Celery worker (candles: ``marketdata.klines``) is killed at every other
one of those moments (it takes longer to boot than the engine: killed every
time, it would hardly ever be up); beat, left running, sweeps up the tasks
the kills lost.  Once
drained, every candle of every interval equals a brute-force aggregation of
the trades.

``ADVERSARIAL_FULL=1`` runs 10,000 placements and 50 kills.
"""

from __future__ import annotations

import os
import random
import signal
import threading
import time
from collections import Counter
from decimal import Decimal

import pytest
from django.db import connection, transaction

from accounts import services as money
from accounts.models import Balance, LedgerEntry
from exchange_site.errors import ApplicationError
from exchange_site.redis import get_redis
from marketdata import klines
from marketdata.streams import KLINE_INTERVALS
from marketdata.tests.test_klines_aggregation import brute_force, stored
from matching.engine import GROUP, HEARTBEAT_KEY, Engine
from matching.models import EngineState
from orders import services, streams
from orders.models import OpenOrderCount, Order, Trade
from tests import figures
from tests.engine_driver import settled
from tests.factories import UserFactory, fund
from tests.invariants import assert_exchange_invariants
from tests.stack import LiveStack

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

FULL = os.environ.get("ADVERSARIAL_FULL") == "1"
PLACEMENTS = 10_000 if FULL else 3_000
KILLS = 50 if FULL else 25
CLIENTS = 8
KILLED_EVERY = {"engine": 1, "worker": 2}  # process: killed at every n-th moment
FLOAT = Decimal(1_000_000)
S = Order.Status


def order_request(rng: random.Random) -> services.OrderRequest:
    side = rng.choice(("buy", "sell"))
    quantity = Decimal(rng.randint(10, 400)) / 1000
    roll = rng.random()
    if roll < 0.07:
        return services.OrderRequest(side=side, type="market", quantity=quantity)
    if roll < 0.12:
        return services.OrderRequest(side="buy", type="market", quote_quantity=Decimal(rng.randint(500, 4000)) / 100)
    offset = rng.randint(-20, 8) if side == "buy" else rng.randint(-8, 20)
    kind = "limit_maker" if roll < 0.22 else "limit"
    tif = "ioc" if 0.22 <= roll < 0.30 else "fok" if 0.30 <= roll < 0.33 else "gtc"
    stp = rng.choice(("expire_taker", "expire_maker", "expire_both")) if rng.random() < 0.05 else "none"
    return services.OrderRequest(
        side=side, type=kind, price=100 + Decimal(offset) / 100, quantity=quantity, time_in_force=tif, stp_mode=stp
    )


class Flow:
    def __init__(self, rate_per_s: float) -> None:
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.placed = 0
        self.outcomes: Counter = Counter()
        self.errors: list[BaseException] = []
        self.interval = CLIENTS / rate_per_s

    def count(self, outcome: str) -> None:
        with self.lock:
            self.outcomes[outcome] += 1
            if outcome == "placed":
                self.placed += 1


def client(index: int, market, users, flow: Flow) -> None:
    """Places, cancels and cancels-all for its own users until told to stop (paced, so the kills spread over it)."""
    rng = random.Random(index)
    live: dict[int, list[int]] = {i: [] for i in range(len(users))}
    try:
        while not flow.stop.is_set():
            time.sleep(flow.interval * rng.uniform(0.5, 1.5))
            who = rng.randrange(len(users))
            try:
                if live[who] and rng.random() < 0.2:
                    order_id = live[who].pop(rng.randrange(len(live[who])))
                    services.request_cancel(user=users[who], order_id=order_id)
                    flow.count("cancel accepted")
                elif rng.random() < 0.01:
                    services.request_cancel_all(user=users[who], market=market)
                    live[who].clear()
                    flow.count("cancel-all")
                else:
                    order = services.place_order(user=users[who], market=market, request=order_request(rng))
                    live[who].append(order.id)
                    flow.count("placed")
            except ApplicationError as refusal:
                flow.count(refusal.code)
    except BaseException as error:
        flow.errors.append(error)
        raise
    finally:
        connection.close()


def wait_started(stack: LiveStack, symbol: str, since_ms: int, timeout: float = 30.0) -> None:
    """Until the engine process started after ``since_ms`` has rebuilt its book (its first heartbeat)."""

    def beat() -> bool:
        value = get_redis().hget(HEARTBEAT_KEY, symbol)
        return value is not None and int(value) >= since_ms

    stack.wait_until(beat, timeout=timeout, what="the restarted engine's first heartbeat")


def kill_and_restart(stack: LiveStack, symbol: str, rng: random.Random, kills: int) -> Counter:
    """SIGKILL the engine and the worker ``kills`` times at random moments, restarting them at once each time.

    Returns what each kill interrupted, as far as Redis can tell afterwards: stream
    entries read and not acked (a batch being matched, written or acked), and a
    candle run that had claimed its range (aggregating or pushing).
    """
    moments: Counter = Counter()
    redis = get_redis()
    for k in range(kills):
        spawned_ms = int(time.time() * 1000)
        if k % 4 == 3:
            # A quarter of the kills hit a process still booting, rebuilding or recovering.
            time.sleep(rng.uniform(0.3, 2.0))
            moments["during start"] += 1
        else:
            wait_started(stack, symbol, spawned_ms)
            time.sleep(rng.uniform(0.05, 0.6))
            moments["while running"] += 1
        killed = [name for name, every in KILLED_EVERY.items() if k % every == 0]
        for name in killed:
            stack.processes[name].send_signal(signal.SIGKILL)
        for name in killed:
            stack.processes[name].wait(10)
            moments[f"{name} killed"] += 1
        if redis.xpending(streams.stream_key(symbol), GROUP)["pending"]:
            moments["engine had unacked entries"] += 1
        if redis.hexists(klines.dirty_key(symbol), "claimed"):
            moments["worker had a candle run claimed"] += 1
        for name in killed:
            stack.start(name)
    return moments


def candles_match(market) -> bool:
    if get_redis().exists(klines.dirty_key(market.symbol)):
        return False
    trades = list(Trade.objects.filter(market=market).values_list("trade_id", "executed_at", "price", "quantity"))
    return all(stored(market, interval) == brute_force(trades, interval) for interval in KLINE_INTERVALS)


def snapshot(market) -> dict:
    """What the engine decided, in comparable form (no timestamps)."""
    state = EngineState.objects.get(market=market)
    trade_fields = ("trade_id", "price", "quantity", "quote_quantity", "taker_side", "buy_order_id", "sell_order_id",
                    "buyer_id", "seller_id", "buyer_fee", "seller_fee")  # fmt: skip
    return {
        "trades": list(Trade.objects.filter(market=market).order_by("trade_id").values_list(*trade_fields)),
        "orders": {
            row[0]: row[1:]
            for row in Order.objects.filter(market=market).values_list(
                "pk", "status", "filled_quantity", "filled_quote", "locked_amount", "book_seq", "end_reason"
            )
        },
        "balances": {(b.user_id, b.asset_id): (b.available, b.locked) for b in Balance.objects.all()},
        "counters": (state.last_trade_id, state.last_book_seq),
        "open_orders": dict(
            OpenOrderCount.objects.filter(market=market).values_list("user_id", "count").order_by("user_id")
        ),
    }


def rewind_to_acceptance(market) -> None:
    """Put every order back as order entry left it: PENDING, holding what its ``order_lock`` entries hold.

    Everything the engine wrote goes: trades, trade/fee/unlock ledger entries,
    order progress, its counters, what it took off the open-order counters.  Balances are re-derived from the remaining
    ledger (deposits and holds), which is exactly what they were made of.
    """
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("DELETE FROM orders_trade WHERE market_id = %s", [market.id])
        cursor.execute("DELETE FROM accounts_ledgerentry WHERE reason IN ('trade', 'fee', 'order_unlock')")
        cursor.execute(
            "UPDATE orders_order AS o SET status = 'pending', filled_quantity = 0, filled_quote = 0,"
            " book_seq = NULL, end_reason = '', cancel_requested_at = NULL, processed_at = NULL,"
            " locked_amount = (SELECT amount FROM accounts_ledgerentry AS e"
            "                  WHERE e.order_id = o.id AND e.reason = 'order_lock' AND e.bucket = 'locked')"
            " WHERE o.market_id = %s",
            [market.id],
        )
        cursor.execute(
            "UPDATE accounts_balance AS b SET"
            " available = COALESCE((SELECT sum(amount) FROM accounts_ledgerentry AS e WHERE e.user_id = b.user_id"
            "   AND e.asset_id = b.asset_id AND e.bucket = 'available'), 0),"
            " locked = COALESCE((SELECT sum(amount) FROM accounts_ledgerentry AS e WHERE e.user_id = b.user_id"
            "   AND e.asset_id = b.asset_id AND e.bucket = 'locked'), 0)"
        )
        # Every order is live again: each user's open-order counter is their number of orders.
        cursor.execute(
            "UPDATE orders_openordercount AS c SET count = n.n, cap = GREATEST(c.cap, n.n)"
            " FROM (SELECT user_id, count(*) AS n FROM orders_order WHERE market_id = %s GROUP BY user_id) AS n"
            " WHERE c.market_id = %s AND c.user_id = n.user_id",
            [market.id, market.id],
        )
        EngineState.objects.filter(market=market).update(last_trade_id=0, last_book_seq=0, last_update_id=0)


def replay(market) -> int:
    """A fresh engine in this process reads the whole command stream again, in order, and settles it."""
    redis = get_redis()
    redis.xgroup_destroy(streams.stream_key(market.symbol), GROUP)
    engine = Engine([market], block_ms=1)
    engine.start()  # rebuilds an empty book; recreates the group at the stream's start
    commands = 0
    while done := engine.read(pending=False):
        commands += done
    connection.close()  # releases the market's advisory lock
    return commands


def test_engine_killed_at_random_moments_ends_as_a_replay_of_the_accepted_orders(market, btc, usdt):
    rng = random.Random(2024)
    users = []
    for i in range(24):
        user = UserFactory(username=f"replay{i}")
        fund(user, btc, Decimal(50) if i < 20 else Decimal("0.3"))
        fund(user, usdt, Decimal(50_000) if i < 20 else Decimal(40))
        users.append(user)
    symbol = market.symbol
    started = time.monotonic()
    env = {"ENGINE_BATCH_SIZE": "100", "KLINES_SWEEP_EVERY_S": "2"}
    with LiveStack(web=False, engine=True, celery=True, beat=True, env=env) as stack:
        # Pace the flow so it spans the kills: about 1.6 s per engine life.
        flow = Flow(rate_per_s=PLACEMENTS / (KILLS * 1.6) * 1.25)
        threads = [
            threading.Thread(target=client, args=(i, market, users[i::CLIENTS], flow), daemon=True)
            for i in range(CLIENTS)
        ]
        for thread in threads:
            thread.start()
        moments = kill_and_restart(stack, symbol, rng, KILLS)
        while flow.placed < PLACEMENTS and not flow.errors:
            time.sleep(0.1)
        flow.stop.set()
        for thread in threads:
            thread.join(30)
        assert not flow.errors, flow.errors
        stack.wait_until(settled, timeout=90, what="the engine to settle every accepted order")
        flow_seconds = time.monotonic() - started
        stack.wait_until(lambda: candles_match(market), timeout=60, interval=0.5, what="the candles to catch up")
    log = stack.log_path("engine").read_text(errors="replace")

    # Every accepted order reached the stream once; each ended in one state.
    entries = get_redis().xrange(streams.stream_key(symbol))
    commands = [(fields[b"c"].decode(), int(fields[b"o"])) for _, fields in entries]
    placed = Counter(order_id for command, order_id in commands if command == streams.PLACE)
    accepted = set(Order.objects.filter(market=market).values_list("pk", flat=True))
    assert set(placed) == accepted and set(placed.values()) == {1}
    statuses = Counter(Order.objects.filter(market=market).values_list("status", flat=True))
    assert set(statuses) <= {S.OPEN, S.PARTIALLY_FILLED, S.FILLED, S.CANCELLED, S.EXPIRED, S.REJECTED}
    assert_exchange_invariants()
    crashed = snapshot(market)
    ledger_entries = LedgerEntry.objects.count()
    assert len(crashed["trades"]) > len(accepted) // 10, "the flow should trade"
    assert "swept overdue commands" not in log, "the engine swept orders the stream still held"

    accounts = [(user, asset) for user in users for asset in (btc, usdt)]
    for user, asset in accounts:
        money.deposit(user=user, asset=asset, amount=FLOAT, note="replay float")
    rewind_to_acceptance(market)
    replay_started = time.monotonic()
    replayed_commands = replay(market)
    replay_seconds = time.monotonic() - replay_started
    replayed = snapshot(market)
    assert replayed["trades"] == crashed["trades"]
    assert replayed["orders"] == crashed["orders"]
    assert replayed["counters"] == crashed["counters"]
    for user, asset in accounts:
        money.withdraw(user=user, asset=asset, amount=FLOAT, note="replay float")
    assert snapshot(market)["balances"] == crashed["balances"]
    assert_exchange_invariants()
    figures.report(
        "crash_replay",
        {
            "placements": len(accepted),
            "stream_commands": len(commands),
            "replayed_commands": replayed_commands,
            "kills": KILLS,
            "kill_moments": dict(moments),
            "flow_outcomes": dict(flow.outcomes.most_common()),
            "final_statuses": dict(statuses.most_common()),
            "trades": len(crashed["trades"]),
            "ledger_entries": ledger_entries,
            "seconds_flow_and_drain": round(flow_seconds, 1),
            "seconds_replay": round(replay_seconds, 1),
            "replay_differences": 0,
            "lost": 0,
        },
    )
