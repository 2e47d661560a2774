"""Random flows of placements and cancels from many users keep every money invariant.

Each example gets a market and users of its own (so examples do not share a
book), while the invariants are checked over the whole database.
"""

from __future__ import annotations

import itertools
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from exchange_site.errors import ApplicationError
from orders import services
from orders.models import Order
from tests.engine_driver import EngineDriver
from tests.factories import AssetFactory, MarketFactory, UserFactory, fund
from tests.invariants import assert_exchange_invariants

USERS = 4
_examples = itertools.count()

users = st.integers(0, USERS - 1)
sides = st.sampled_from(["buy", "sell"])
offsets = st.integers(-5, 5)
lots = st.integers(1, 60)
operations = st.one_of(
    st.tuples(st.just("limit"), users, sides, offsets, lots, st.sampled_from(["gtc", "gtc", "ioc", "fok"]),
              st.sampled_from(["none", "none", "expire_taker", "expire_maker", "expire_both"])),
    st.tuples(st.just("maker"), users, sides, offsets, lots),
    st.tuples(st.just("market_sell"), users, lots),
    st.tuples(st.just("market_buy_quote"), users, st.integers(1, 8000)),
    st.tuples(st.just("market_buy_qty"), users, lots),
    st.tuples(st.just("cancel"), users, st.integers(0, 30)),
    st.tuples(st.just("cancel_all"), users),
    st.tuples(st.just("drain"),),
    st.tuples(st.just("batch"), users, st.lists(st.tuples(sides, offsets, lots), min_size=1, max_size=6)),
)  # fmt: skip


@pytest.mark.django_db
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(flow=st.lists(operations, min_size=1, max_size=40))
def test_random_flows_keep_the_invariants(flow):
    n = next(_examples)
    base, quote = AssetFactory(symbol=f"B{n}", precision=6), AssetFactory(symbol=f"Q{n}", precision=6)
    market = MarketFactory(base=base, quote=quote, lot_size=Decimal("0.01"), min_notional=Decimal("0.5"))
    traders = [UserFactory(username=f"flow{n}-{i}") for i in range(USERS)]
    for trader in traders:
        # Small balances, so insufficient funds happens too.
        fund(trader, base, Decimal(2))
        fund(trader, quote, Decimal(150))
    driver = EngineDriver([market])
    placed: dict[int, list[int]] = {i: [] for i in range(USERS)}

    for op in flow:
        kind = op[0]
        try:
            if kind == "drain":
                driver.drain()
                assert_exchange_invariants(driver)
                continue
            user = traders[op[1]]
            if kind in ("limit", "maker"):
                side, offset, qty = op[2:5]
                request = services.OrderRequest(
                    side=side,
                    type="limit" if kind == "limit" else "limit_maker",
                    price=Decimal(100 + offset) / 10,
                    quantity=qty * market.lot_size,
                    time_in_force=op[5] if kind == "limit" else "gtc",
                    stp_mode=op[6] if kind == "limit" else "none",
                )
            elif kind == "market_sell":
                request = services.OrderRequest(side="sell", type="market", quantity=op[2] * market.lot_size)
            elif kind == "market_buy_quote":
                request = services.OrderRequest(side="buy", type="market", quote_quantity=Decimal(op[2]) / 100)
            elif kind == "market_buy_qty":
                request = services.OrderRequest(side="buy", type="market", quantity=op[2] * market.lot_size)
            elif kind == "batch":
                requests = [
                    (market, services.OrderRequest(side=side, type="limit", price=Decimal(100 + offset) / 10,
                                                   quantity=qty * market.lot_size))
                    for side, offset, qty in op[2]
                ]  # fmt: skip
                for outcome in services.place_orders(user=user, requests=requests):
                    if isinstance(outcome, ApplicationError):
                        assert outcome.code in {"insufficient_funds", "below_min_notional"}, outcome.code
                    else:
                        placed[op[1]].append(outcome.id)
                continue
            elif kind == "cancel":
                ids = placed[op[1]]
                if ids:
                    services.request_cancel(user=user, order_id=ids[op[2] % len(ids)])
                continue
            else:
                services.request_cancel_all(user=user, market=market)
                continue
            placed[op[1]].append(services.place_order(user=user, market=market, request=request).id)
        except ApplicationError as refusal:
            assert refusal.code in {
                "insufficient_funds", "below_min_notional", "no_reference_price", "order_not_cancellable",
            }, refusal.code  # fmt: skip

    driver.drain()
    assert not Order.objects.filter(market=market, status=Order.Status.PENDING).exists()
    assert_exchange_invariants(driver)
