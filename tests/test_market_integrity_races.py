"""Market integrity under concurrency (real PostgreSQL, one connection per thread, commits for real).

* The per-(user, market) open-order cap is never exceeded, whether the orders
  come one by one, in batches, or while the engine ends orders and frees slots.
* A market halted in the middle of a flow loses no queued command: after the
  resume every accepted order ends (or rests) exactly once.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from decimal import Decimal

import pytest
from django.db import connection

from exchange_site.errors import ApplicationError
from exchange_site.redis import get_redis
from markets.models import Market
from markets.services import market_set_status
from orders import services, streams
from orders.models import OpenOrderCount, Order, Trade
from tests import figures
from tests.engine_driver import EngineThread, settled
from tests.factories import UserFactory, fund, place_limit
from tests.invariants import assert_exchange_invariants
from tests.threads import run_threads

pytestmark = pytest.mark.django_db(transaction=True)

CAP = 10


@pytest.fixture
def cap(settings):
    settings.EXCHANGE = {**settings.EXCHANGE, "MAX_OPEN_ORDERS": CAP}
    return CAP


def live_orders(user, market) -> int:
    return Order.objects.filter(user=user, market=market, status__in=Order.LIVE_STATUSES).count()


def test_sixteen_threads_placing_at_once_never_pass_the_open_order_cap(market, usdt, cap):
    trader = UserFactory(username="capped")
    fund(trader, usdt, Decimal(100_000))
    request = services.OrderRequest(side="buy", type="limit", price=Decimal(100), quantity=Decimal("0.1"))

    def place_five(index: int):
        for _ in range(5):
            try:
                if index % 2:
                    services.place_order(user=trader, market=market, request=request)
                else:
                    (result,) = services.place_orders(user=trader, requests=[(market, request)])
                    if isinstance(result, ApplicationError):
                        raise result
                yield "placed"
            except ApplicationError as refusal:
                yield refusal.code

    outcomes = run_threads(16, place_five)
    assert outcomes == Counter(placed=cap, too_many_open_orders=80 - cap)
    assert live_orders(trader, market) == cap
    assert OpenOrderCount.objects.get(user=trader, market=market).count == cap
    assert_exchange_invariants()
    figures.report("open_order_cap_placements", {"threads": 16, "cap": cap, "outcomes": dict(outcomes)})


def test_the_cap_holds_while_the_engine_frees_slots(market, btc, usdt, cap):
    """Eight threads place and cancel as fast as they can while the engine ends orders; a sampler
    watches the live orders of the user: never more than the cap, and the counter ends equal to them."""
    trader = UserFactory(username="churner")
    fund(trader, usdt, Decimal(1_000_000))
    request = services.OrderRequest(side="buy", type="limit", price=Decimal(100), quantity=Decimal("0.01"))
    peak = 0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        try:
            while not done.is_set():
                peak = max(peak, live_orders(trader, market))
                time.sleep(0.002)
        finally:
            connection.close()

    sampler = threading.Thread(target=sample)
    with EngineThread([market]) as running:
        sampler.start()

        def churn(_: int):
            for _ in range(25):
                try:
                    order = services.place_order(user=trader, market=market, request=request)
                    yield "placed"
                except ApplicationError as refusal:
                    yield refusal.code
                    continue
                try:
                    services.request_cancel(user=trader, order_id=order.id)
                except ApplicationError as refusal:
                    yield refusal.code

        outcomes = run_threads(8, churn)
        running.wait_until(settled, timeout=20)
        done.set()
        sampler.join()
        assert_exchange_invariants(running)
    assert peak <= cap
    assert outcomes["placed"] + outcomes["too_many_open_orders"] == 200
    assert set(outcomes) <= {"placed", "too_many_open_orders"}
    assert OpenOrderCount.objects.get(user=trader, market=market).count == live_orders(trader, market) == 0
    figures.report(
        "open_order_cap_with_engine", {"threads": 8, "cap": cap, "peak_live": peak, "outcomes": dict(outcomes)}
    )


def test_a_market_halted_mid_flow_loses_no_queued_command(market, btc, usdt):
    """Orders and cancels stream in; the market halts (the engine pauses), more cancels arrive,
    nothing settles while halted; after the resume every command is processed exactly once."""
    users = [UserFactory(username=f"halt{i}") for i in range(4)]
    for user in users:
        fund(user, btc, Decimal(100))
        fund(user, usdt, Decimal(100_000))
    with EngineThread([market]) as running:
        accepted: list[Order] = []
        for i in range(60):
            user = users[i % 4]
            side = "buy" if i % 2 else "sell"
            accepted.append(place_limit(user, market, side, "0.5", str(100 + (i % 7) - 3)))
        market_set_status(market=market, status=Market.Status.HALTED)  # the engine may be mid-stream
        pending_at_halt = Order.objects.filter(market=market, status=Order.Status.PENDING).count()
        with pytest.raises(ApplicationError) as refused:
            place_limit(users[0], market, "buy", "1", "100")
        assert refused.value.code == "market_halted"
        live = [o for o in accepted if Order.objects.get(pk=o.pk).status in Order.LIVE_STATUSES]
        cancels = 0
        for order in live[::2]:
            services.request_cancel(user=order.user, order_id=order.pk)
            cancels += 1
        frozen = (
            Trade.objects.count(),
            list(Order.objects.order_by("pk").values_list("pk", "status", "filled_quantity")),
        )
        time.sleep(1.0)  # two pause checks: the engine must not touch a halted market
        assert (
            Trade.objects.count(),
            list(Order.objects.order_by("pk").values_list("pk", "status", "filled_quantity")),
        ) == frozen
        assert not settled()  # the cancels just requested (at least) are still owed
        market_set_status(market=market, status=Market.Status.TRADING)
        running.wait_until(settled, timeout=15, what="the resumed market to settle")
        assert_exchange_invariants(running)
    assert get_redis().xpending(streams.stream_key(market.symbol), "engine")["pending"] == 0
    statuses = Counter(Order.objects.filter(market=market).values_list("status", flat=True))
    assert sum(statuses.values()) == 60 and not statuses[Order.Status.PENDING]
    # Every requested cancel was served (the order ended) and nothing ended twice (invariants: one
    # unlock per order, filled == its trades, trade ids 1..N).
    assert not Order.objects.filter(cancel_requested_at__isnull=False, status__in=Order.LIVE_STATUSES).exists()
    figures.report(
        "halt_resume",
        {
            "orders": 60,
            "pending_at_halt": pending_at_halt,
            "cancels_while_halted": cancels,
            "trades": Trade.objects.count(),
            "statuses": dict(statuses),
        },
    )
