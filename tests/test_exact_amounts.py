"""No dust: in any market ``market_create`` accepts, every notional, hold, fee and balance is a whole
number of its asset's units, and conservation is exact without a rounding account.

Hypothesis draws the assets' precisions, the tick and lot (kept only when ``validate_filters``
accepts them), the fee rates (any of the 6 decimals the rate column holds, so fees are mostly
NOT exact before rounding) and a flow of limit and market orders; the engine matches and settles
it; ``assert_exchange_invariants`` then checks, among the rest, that no balance, ledger entry,
order hold, trade amount or fee is finer than its asset's unit and that every asset is conserved
to the last unit (docs/decisions/010).
"""

from __future__ import annotations

import itertools
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from exchange_site.errors import ApplicationError
from markets.services import market_create, validate_filters
from orders import services
from tests.engine_driver import EngineDriver
from tests.factories import AssetFactory, UserFactory, fund
from tests.invariants import assert_exchange_invariants

_examples = itertools.count()

steps = st.builds(lambda digit, exponent: Decimal(digit).scaleb(-exponent), st.sampled_from([1, 2, 5]),
                  st.integers(0, 6))  # fmt: skip
rates = st.integers(0, 9999).map(lambda n: Decimal(n).scaleb(-6))  # 0 .. 0.009999, six decimals
orders = st.lists(
    st.tuples(st.sampled_from(["buy", "sell"]), st.sampled_from(["limit", "limit", "market", "market_quote"]),
              st.integers(-20, 20), st.integers(1, 40), st.integers(1, 10**6)),
    min_size=4, max_size=30,
)  # fmt: skip


@pytest.mark.django_db
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(base_precision=st.integers(0, 8), quote_precision=st.integers(0, 8), tick=steps, lot=steps,
       maker=rates, taker=rates, flow=orders)  # fmt: skip
def test_every_amount_is_exact_at_its_assets_precision(base_precision, quote_precision, tick, lot, maker, taker, flow):
    n = next(_examples)
    base = AssetFactory(symbol=f"XB{n}", precision=base_precision)
    quote = AssetFactory(symbol=f"XQ{n}", precision=quote_precision)
    try:
        validate_filters(base=base, quote=quote, tick_size=tick, lot_size=lot)
    except ApplicationError:
        assume(False)
    market = market_create(
        base=base, quote=quote, tick_size=tick, lot_size=lot, maker_fee_rate=maker, taker_fee_rate=taker
    )
    traders = [UserFactory(username=f"exact{n}-{i}") for i in range(3)]
    for trader in traders:
        fund(trader, base, lot * 10_000)
        fund(trader, quote, tick * lot * 10**8)
    driver = EngineDriver([market])
    mid = 1000  # ticks
    for i, (side, kind, offset, lots, budget) in enumerate(flow):
        user = traders[i % len(traders)]
        if kind == "limit":
            request = services.OrderRequest(side=side, type="limit", price=(mid + offset) * tick, quantity=lots * lot)
        elif kind == "market":
            request = services.OrderRequest(side=side, type="market", quantity=lots * lot)
        else:  # by quote: any amount at the quote's precision, not a multiple of tick x lot
            request = services.OrderRequest(
                side="buy", type="market", quote_quantity=Decimal(budget).scaleb(-quote_precision) + tick * lot * mid
            )
        try:
            services.place_order(user=user, market=market, request=request)
        except ApplicationError as refusal:
            assert refusal.code in {"insufficient_funds", "no_reference_price", "price_outside_band"}, refusal
        if i % 3 == 2:
            driver.drain()
    driver.drain()
    assert_exchange_invariants(driver)
