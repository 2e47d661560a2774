"""The market maker's pure core: ladder shape, market filters, budgets, inventory skew, re-quote plans."""

from __future__ import annotations

from decimal import Decimal as D

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from markets.market_maker.quoting import (
    BUY,
    SELL,
    LadderParams,
    LiveOrder,
    MarketFilters,
    Quote,
    build_ladder,
    clear_of_book,
    inventory_skew,
    ladder_prices,
    locked_by,
    plan_requote,
    take_side,
    taker_quote,
)

BTC_USDT = MarketFilters(
    symbol="BTC_USDT",
    base="BTC",
    quote="USDT",
    tick_size=D("0.01"),
    lot_size=D("0.00001"),
    min_notional=D("5"),
    max_quantity=D("1000"),
)
PARAMS = LadderParams(
    levels=5,
    spread_bps=D(10),
    level_step_bps=D(5),
    level_size_quote=D(2000),
    max_inventory_quote=D(50_000),
    skew_bps=D(20),
    size_skew=D("0.5"),
)
RICH = {"base_budget": D(1_000), "quote_budget": D(100_000_000)}


def ladder(*, market=BTC_USDT, reference=D(60_000), skew=D(0), params=PARAMS, **budgets):
    return build_ladder(market=market, reference=reference, skew=skew, params=params, **(RICH | budgets))


def sides(quotes):
    return [q for q in quotes if q.side == BUY], [q for q in quotes if q.side == SELL]


def test_a_flat_ladder_is_symmetric_around_the_reference_with_the_configured_spread_and_steps():
    bids, asks = sides(ladder())

    assert [q.price for q in bids] == [D("59970"), D("59940"), D("59910"), D("59880"), D("59850")]
    assert [q.price for q in asks] == [D("60030"), D("60060"), D("60090"), D("60120"), D("60150")]
    # 2000 USDT per level at the reference, down on the lot.
    assert {q.quantity for q in bids + asks} == {D("0.03333")}


def test_prices_round_away_from_the_reference_onto_the_tick():
    bids, asks = sides(ladder(reference=D("60000.005")))

    # 60000.005 x (1 -/+ 5 bps) = 59970.0025 / 60030.0075: bids round down, asks up.
    assert bids[0].price == D("59970.00") and asks[0].price == D("60030.01")
    assert all(q.price % BTC_USDT.tick_size == 0 for q in bids + asks)
    assert all(q.quantity % BTC_USDT.lot_size == 0 for q in bids + asks)


def test_levels_finer_than_the_tick_stay_one_tick_apart_and_never_cross():
    coarse = MarketFilters("X_Y", "X", "Y", D("1"), D("1"), D("0"), D("1000000"))
    params = LadderParams(4, D(0), D("0.1"), D(1000), D(1000), D(0), D(0))

    bids, asks = sides(ladder(market=coarse, reference=D(100), params=params))

    assert [q.price for q in bids] == [D(100), D(99), D(98), D(97)]
    assert [q.price for q in asks] == [D(101), D(102), D(103), D(104)]


def test_bids_that_would_reach_zero_are_dropped():
    cheap = MarketFilters("X_Y", "X", "Y", D("1"), D("1"), D("0"), D("1000000"))
    params = LadderParams(5, D(10_000), D(5_000), D(10), D(1000), D(0), D(0))

    bids, asks = sides(ladder(market=cheap, reference=D(2), params=params))

    assert [q.price for q in bids] == [D(1)]
    assert len(asks) == 5


def test_a_small_level_size_is_raised_to_the_minimum_notional():
    params = LadderParams(3, D(10), D(5), D(1), D(50_000), D(0), D(0))

    bids, asks = sides(ladder(params=params))

    for quote in bids + asks:
        assert quote.price * quote.quantity >= BTC_USDT.min_notional
        # ...and no more than the smallest lot count that reaches it.
        assert (quote.quantity - BTC_USDT.lot_size) * quote.price < BTC_USDT.min_notional


def test_a_level_size_above_the_maximum_quantity_is_capped():
    market = MarketFilters("BTC_USDT", "BTC", "USDT", D("0.01"), D("0.001"), D("5"), D("0.0105"))

    quotes = ladder(market=market)

    assert {q.quantity for q in quotes} == {D("0.010")}


def test_a_market_whose_maximum_quantity_cannot_reach_the_minimum_notional_gets_no_quotes():
    market = MarketFilters("BTC_USDT", "BTC", "USDT", D("0.01"), D("0.001"), D("1000"), D("0.01"))

    assert ladder(market=market) == []


def test_a_halted_market_gets_no_quotes():
    halted = MarketFilters("BTC_USDT", "BTC", "USDT", D("0.01"), D("0.00001"), D("5"), D("1000"), trading=False)

    assert ladder(market=halted) == []


def test_bids_never_lock_more_quote_than_the_budget_the_last_one_is_cut_and_the_rest_dropped():
    bids, asks = sides(ladder(quote_budget=D(5000)))

    assert [q.quantity for q in bids] == [D("0.03333"), D("0.03333"), D("0.01674")]
    assert sum(q.price * q.quantity for q in bids) <= D(5000)
    assert len(asks) == 5  # the other side has its own budget


def test_asks_never_lock_more_base_than_the_budget():
    bids, asks = sides(ladder(base_budget=D("0.08")))

    assert [q.quantity for q in asks] == [D("0.03333"), D("0.03333"), D("0.01334")]
    assert len(bids) == 5


def test_a_cut_below_the_minimum_notional_drops_the_level_rather_than_sending_a_refused_order():
    bids, _ = sides(ladder(quote_budget=D(2000) + D(4)))

    # The first level fits; 4 USDT left cannot make a 5 USDT order.
    assert len(bids) == 1


def test_no_budget_no_side():
    bids, asks = sides(ladder(base_budget=D(0), quote_budget=D(0)))

    assert bids == [] and asks == []


def test_long_inventory_lowers_prices_shrinks_bids_and_grows_asks():
    flat_bids, flat_asks = sides(ladder(skew=D(0)))
    long_bids, long_asks = sides(ladder(skew=D("0.5")))

    assert long_bids[0].price < flat_bids[0].price and long_asks[0].price < flat_asks[0].price
    assert long_bids[0].quantity < flat_bids[0].quantity < long_asks[0].quantity
    # 20 bps x 0.5 moves the centre 10 bps; sizes move by 50% x 0.5.
    assert long_bids[0].price == D("59910.03") and long_asks[0].price == D("59969.97")
    assert long_bids[0].quantity == D("0.02500") and long_asks[0].quantity == D("0.04166")


def test_short_inventory_mirrors_the_skew():
    flat_bids, flat_asks = sides(ladder(skew=D(0)))
    short_bids, short_asks = sides(ladder(skew=D("-0.5")))

    assert short_bids[0].price > flat_bids[0].price and short_asks[0].price > flat_asks[0].price
    assert short_asks[0].quantity < flat_asks[0].quantity < short_bids[0].quantity


@pytest.mark.parametrize(("skew", "gone"), [(D(1), BUY), (D(3), BUY), (D(-1), SELL), (D(-7), SELL)])
def test_at_the_inventory_limit_the_growing_side_stops_and_the_skew_goes_no_further(skew, gone):
    quotes = ladder(skew=skew)

    assert {q.side for q in quotes} == {BUY, SELL} - {gone}
    limit = ladder(skew=D(1) if skew > 0 else D(-1))
    assert quotes == limit  # beyond the limit nothing moves further


def test_inventory_skew_is_the_position_value_over_the_limit_clamped():
    assert inventory_skew(position=D("0.5"), reference=D(60_000), max_inventory_quote=D(60_000)) == D("0.5")
    assert inventory_skew(position=D("-0.25"), reference=D(60_000), max_inventory_quote=D(60_000)) == D("-0.25")
    assert inventory_skew(position=D(10), reference=D(60_000), max_inventory_quote=D(60_000)) == 1
    assert inventory_skew(position=D(-10), reference=D(60_000), max_inventory_quote=D(60_000)) == -1
    assert inventory_skew(position=D(10), reference=D(60_000), max_inventory_quote=D(0)) == 0


def test_a_zero_spread_on_the_tick_still_leaves_a_tick_between_bid_and_ask():
    params = LadderParams(1, D(0), D(0), D(1000), D(1000), D(0), D(0))

    bids, asks = ladder_prices(market=BTC_USDT, centre=D(100), params=params)

    assert bids == [D(100)] and asks == [D("100.01")]


markets = st.builds(
    MarketFilters,
    symbol=st.just("A_B"),
    base=st.just("A"),
    quote=st.just("B"),
    tick_size=st.sampled_from([D("0.01"), D("0.5"), D("1"), D("0.0001")]),
    lot_size=st.sampled_from([D("0.00001"), D("0.001"), D("1"), D("0.1")]),
    min_notional=st.sampled_from([D(0), D(1), D(5), D(100)]),
    max_quantity=st.sampled_from([D("0.5"), D(10), D(1_000_000)]),
)


@settings(max_examples=150, deadline=None)
@given(
    market=markets,
    reference=st.decimals(min_value=D("0.5"), max_value=D(100_000), places=3),
    skew=st.decimals(min_value=D(-2), max_value=D(2), places=2),
    base_budget=st.decimals(min_value=D(0), max_value=D(50), places=5),
    quote_budget=st.decimals(min_value=D(0), max_value=D(200_000), places=2),
    levels=st.integers(min_value=1, max_value=8),
    spread=st.decimals(min_value=D(1), max_value=D(500), places=1),
    step=st.decimals(min_value=D(0), max_value=D(100), places=1),
)
def test_every_quote_passes_every_filter_within_budget_and_the_ladder_never_crosses(
    market, reference, skew, base_budget, quote_budget, levels, spread, step
):
    params = LadderParams(levels, spread, step, D(1000), D(10_000), D(30), D("0.8"))

    quotes = build_ladder(
        market=market,
        reference=reference,
        skew=skew,
        base_budget=base_budget,
        quote_budget=quote_budget,
        params=params,
    )

    bids, asks = sides(quotes)
    for quote in quotes:
        assert market.accepts(quote.price, quote.quantity), quote
    assert len(bids) <= levels and len(asks) <= levels
    assert sum(q.price * q.quantity for q in bids) <= quote_budget
    assert sum(q.quantity for q in asks) <= base_budget
    assert [q.price for q in bids] == sorted({q.price for q in bids}, reverse=True)
    assert [q.price for q in asks] == sorted({q.price for q in asks})
    if bids and asks:
        assert bids[0].price < asks[0].price


# Re-quoting.

LIVE_BID = LiveOrder(1, BUY, D("59970"), D("0.03333"))
LIVE_ASK = LiveOrder(2, SELL, D("60030"), D("0.03333"))


def plan(live, desired, tolerance=D(3), quantity_tolerance=D("0.5")):
    return plan_requote(
        live=live, desired=desired, price_tolerance_bps=tolerance, quantity_tolerance=quantity_tolerance
    )


def test_a_ladder_that_did_not_move_is_left_alone():
    desired = ladder()
    live = [LiveOrder(i + 1, q.side, q.price, q.quantity) for i, q in enumerate(desired)]

    result = plan(live, desired)

    assert result.cancel == [] and result.place == [] and sorted(o.id for o in result.keep) == list(range(1, 11))


def test_a_small_move_within_the_tolerance_keeps_the_orders():
    desired = [Quote(BUY, D("59980"), D("0.03333")), Quote(SELL, D("60040"), D("0.03333"))]

    result = plan([LIVE_BID, LIVE_ASK], desired)  # 10 USDT is 1.7 bps of 60,000

    assert result.keep == [LIVE_BID, LIVE_ASK] and result.cancel == [] and result.place == []


def test_a_level_that_moved_beyond_the_tolerance_is_cancelled_and_placed_anew():
    moved = Quote(BUY, D("59900"), D("0.03333"))  # 11.7 bps away
    kept = Quote(SELL, D("60030"), D("0.03333"))

    result = plan([LIVE_BID, LIVE_ASK], [moved, kept])

    assert result.cancel == [LIVE_BID] and result.place == [moved] and result.keep == [LIVE_ASK]


def test_a_mostly_filled_order_is_replaced_by_a_full_size_one():
    nibbled = LiveOrder(1, BUY, D("59970"), D("0.01000"))
    wanted = Quote(BUY, D("59970"), D("0.03333"))

    result = plan([nibbled], [wanted])

    assert result.cancel == [nibbled] and result.place == [wanted]


def test_orders_never_stand_for_the_other_side_and_extra_orders_are_cancelled():
    stray_bid = LiveOrder(3, BUY, D("60030"), D("0.03333"))

    result = plan([LIVE_BID, stray_bid, LIVE_ASK], [Quote(SELL, D("60030"), D("0.03333"))])

    assert result.keep == [LIVE_ASK] and result.cancel == [LIVE_BID, stray_bid] and result.place == []


def test_each_live_order_stands_for_one_quote_the_nearest_in_price():
    near = LiveOrder(7, BUY, D("59969"), D("0.03333"))
    far = LiveOrder(4, BUY, D("59975"), D("0.03333"))
    desired = [Quote(BUY, D("59970"), D("0.03333")), Quote(BUY, D("59971"), D("0.03333"))]

    result = plan([far, near], desired)

    assert result.keep == [near, far] and result.place == [] and result.cancel == []


def test_a_ladder_shifted_by_one_level_step_moves_only_its_two_ends():
    before = ladder(reference=D(60_000))
    live = [LiveOrder(i + 1, q.side, q.price, q.quantity) for i, q in enumerate(before)]
    after = ladder(reference=D(60_030))  # 5 bps up, the level step: each level lands where its neighbour was

    result = plan(live, after)

    bids, asks = sides(before)
    assert [o.price for o in result.cancel] == [bids[-1].price, asks[0].price]  # outermost bid, best ask
    assert [q.price for q in result.place] == [D("59999.98"), D("60180.08")]  # new best bid, new outer ask
    assert len(result.keep) == 8


def test_a_whole_ladder_moved_beyond_the_tolerance_is_replaced_level_by_level():
    wide = LadderParams(3, D(10), D(20), D(2000), D(50_000), D(20), D("0.5"))
    before = ladder(reference=D(60_000), params=wide)
    live = [LiveOrder(i + 1, q.side, q.price, q.quantity) for i, q in enumerate(before)]
    after = ladder(reference=D(60_030), params=wide)  # 5 bps up, levels 20 bps apart

    assert {o.id for o in plan(live, after).cancel} == {o.id for o in live}
    assert plan(live, after).place == after
    # With a tolerance wider than the move nothing is touched.
    assert plan(live, after, tolerance=D(6)).cancel == []


def test_quotes_that_would_take_from_the_book_are_held_back():
    quotes = ladder(params=LadderParams(2, D(10), D(5), D(2000), D(50_000), D(0), D(0)))

    # Someone bids 60030 (our best ask would trade with it) and offers 59950 (above our second bid).
    kept = clear_of_book(quotes, best_bid=D("60030"), best_ask=D("59950"))

    assert [(q.side, q.price) for q in kept] == [(BUY, D("59940")), (SELL, D("60060"))]
    # A bid at exactly the best ask would take too.
    assert [q.price for q in clear_of_book(quotes, best_bid=None, best_ask=D("59940"))] == [
        D("60030"),
        D("60060"),
    ]
    assert clear_of_book(quotes, best_bid=None, best_ask=None) == quotes


# Taking liquidity.


def test_the_taker_side_is_a_coin_toss_flat_and_reduces_inventory_when_skewed():
    assert take_side(draw=0.49, skew=D(0)) == SELL and take_side(draw=0.51, skew=D(0)) == BUY
    assert take_side(draw=0.99, skew=D(1)) == SELL
    assert take_side(draw=0.0, skew=D(-1)) == BUY
    assert take_side(draw=0.7, skew=D("0.5")) == SELL  # 75% sells when half long


def test_a_taker_order_passes_the_filters_and_its_budget():
    quote = taker_quote(market=BTC_USDT, side=BUY, price=D("60030"), size_quote=D(200), budget=D(1_000))

    assert quote == Quote(BUY, D("60030"), D("0.00333"))
    assert taker_quote(market=BTC_USDT, side=BUY, price=D("60030"), size_quote=D(200), budget=D(100)) is None
    assert taker_quote(market=BTC_USDT, side=SELL, price=D("59970"), size_quote=D(1), budget=D(1)) == Quote(
        SELL, D("59970"), D("0.00009")
    )  # raised to the 5 USDT minimum
    assert taker_quote(market=BTC_USDT, side=SELL, price=D("59970.005"), size_quote=D(1), budget=D(1)) is None


def test_locked_by_counts_quote_for_bids_and_base_for_asks():
    assert locked_by([LIVE_BID, LIVE_ASK], BUY) == D("59970") * D("0.03333")
    assert locked_by([LIVE_BID, LIVE_ASK], SELL) == D("0.03333")


def test_filters_come_from_the_markets_endpoint():
    market = MarketFilters.from_api(
        {
            "symbol": "BTC_USDT",
            "base": "BTC",
            "quote": "USDT",
            "status": "halted",
            "tick_size": "0.01",
            "lot_size": "0.001",
            "min_notional": "1",
            "max_quantity": "1000000000",
        }
    )

    assert market.tick_size == D("0.01") and market.max_quantity == D(1_000_000_000) and not market.trading
