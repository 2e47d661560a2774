"""Tests of ``matching.book.OrderBook``: plain pytest, no Django, no database.

Every test gets its book from the ``book`` fixture, which checks the book's
invariants after the test; tests that take several steps also check them in
between.  The property tests at the end run random flows through the book and
through ``Model``, a deliberately slow and obvious book written here, and
through the shared workload's ``ReferenceBook``.
"""

from __future__ import annotations

import copy
import hashlib
import importlib.util
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from matching.book import (
    BUY,
    CANCELLED,
    EXPIRED,
    FILLED,
    FOK,
    GTC,
    IOC,
    LIMIT,
    MARKET,
    REJECTED,
    SELL,
    STP_EXPIRE_BOTH,
    STP_EXPIRE_MAKER,
    STP_EXPIRE_TAKER,
    STP_NONE,
    OrderBook,
)
from matching.events import (
    DONE,
    F_MAKER,
    F_MAKER_LEFT,
    F_PRICE,
    F_QTY,
    F_TAKER,
    FIELDS,
    FILL,
    RESTED,
    describe,
)

ALICE, BOB, CAROL = 1, 2, 3


@pytest.fixture
def book() -> Iterator[OrderBook]:
    """A fresh book whose invariants are checked once the test is over."""
    b = OrderBook()
    yield b
    b.check_invariants()


def fill(
    taker_id: int,
    maker_id: int,
    taker_user: int,
    maker_user: int,
    price: int,
    qty: int,
    taker_side: int,
    maker_left: int,
) -> tuple:
    """The FILL event the book must emit; ``maker_left == 0`` means the maker left the book FILLED."""
    return (FILL, taker_id, maker_id, taker_user, maker_user, price, qty, taker_side, maker_left)


def rested(order_id: int, side: int, price: int, qty: int) -> tuple:
    return (RESTED, order_id, side, price, qty)


def done(order_id: int, status: str) -> tuple:
    return (DONE, order_id, status)


def fills(events: list) -> list[tuple]:
    return [e for e in events if e[0] == FILL]


def rest(book: OrderBook, order_id: int, user: int, side: int, price: int, qty: int) -> None:
    """Put a maker on the book through ``place`` and check that it only rested."""
    assert book.place(order_id, user, side, price, qty) == [rested(order_id, side, price, qty)]
    book.check_invariants()


# --- LIMIT GTC -------------------------------------------------------------------------


def test_limit_rests_on_an_empty_book(book: OrderBook) -> None:
    assert book.place(1, ALICE, BUY, 100, 5) == [rested(1, BUY, 100, 5)]
    assert book.place(2, BOB, SELL, 105, 3) == [rested(2, SELL, 105, 3)]
    assert (book.best_bid(), book.best_ask()) == (100, 105)
    assert book.resting(1) == (ALICE, BUY, 100, 5)
    assert book.resting(2) == (BOB, SELL, 105, 3)
    assert len(book) == 2


def test_buy_taker_trades_at_the_makers_price(book: OrderBook) -> None:
    rest(book, 1, ALICE, SELL, 100, 5)
    events = book.place(2, BOB, BUY, 102, 3)
    assert events == [fill(2, 1, BOB, ALICE, 100, 3, BUY, 2), done(2, FILLED)]
    assert book.resting(1) == (ALICE, SELL, 100, 2)
    assert book.resting(2) is None
    assert book.best_bid() is None


def test_sell_taker_trades_at_the_makers_price(book: OrderBook) -> None:
    rest(book, 1, ALICE, BUY, 100, 5)
    events = book.place(2, BOB, SELL, 97, 5)
    assert events == [fill(2, 1, BOB, ALICE, 100, 5, SELL, 0), done(2, FILLED)]
    assert len(book) == 0
    assert book.best_bid() is None and book.best_ask() is None


def test_partial_fill_rests_the_rest(book: OrderBook) -> None:
    rest(book, 1, ALICE, SELL, 100, 2)
    rest(book, 2, ALICE, SELL, 101, 2)
    events = book.place(3, BOB, BUY, 101, 7)
    assert events == [
        fill(3, 1, BOB, ALICE, 100, 2, BUY, 0),
        fill(3, 2, BOB, ALICE, 101, 2, BUY, 0),
        rested(3, BUY, 101, 3),
    ]
    assert book.resting(3) == (BOB, BUY, 101, 3)
    assert (book.best_bid(), book.best_ask()) == (101, None)


def test_taker_stops_at_its_limit(book: OrderBook) -> None:
    rest(book, 1, ALICE, SELL, 100, 1)
    rest(book, 2, ALICE, SELL, 102, 1)
    events = book.place(3, BOB, BUY, 101, 5)
    assert events == [fill(3, 1, BOB, ALICE, 100, 1, BUY, 0), rested(3, BUY, 101, 4)]
    assert (book.best_bid(), book.best_ask()) == (101, 102)


def test_a_limit_that_does_not_reach_the_other_side_only_rests(book: OrderBook) -> None:
    rest(book, 1, ALICE, SELL, 100, 1)
    assert book.place(2, BOB, BUY, 99, 1) == [rested(2, BUY, 99, 1)]
    assert book.place(3, BOB, SELL, 101, 1) == [rested(3, SELL, 101, 1)]
    assert book.depth(SELL, 10) == [(100, 1), (101, 1)]


def test_price_priority_before_time_priority(book: OrderBook) -> None:
    rest(book, 1, ALICE, BUY, 99, 1)  # first in, worse price
    rest(book, 2, BOB, BUY, 100, 1)
    events = book.place(3, CAROL, SELL, 99, 1)
    assert fills(events) == [fill(3, 2, CAROL, BOB, 100, 1, SELL, 0)]
    assert book.resting(1) == (ALICE, BUY, 99, 1)


def test_time_priority_within_a_level(book: OrderBook) -> None:
    rest(book, 1, ALICE, SELL, 100, 2)
    rest(book, 2, BOB, SELL, 100, 2)
    rest(book, 3, ALICE, SELL, 100, 2)
    events = book.place(4, CAROL, BUY, 100, 3)
    assert events == [
        fill(4, 1, CAROL, ALICE, 100, 2, BUY, 0),
        fill(4, 2, CAROL, BOB, 100, 1, BUY, 1),
        done(4, FILLED),
    ]
    assert book.resting(2) == (BOB, SELL, 100, 1)
    # A partially filled maker keeps its place at the head.
    assert fills(book.place(5, CAROL, BUY, 100, 1)) == [fill(5, 2, CAROL, BOB, 100, 1, BUY, 0)]


def test_exact_fill_of_the_last_maker_empties_the_side(book: OrderBook) -> None:
    rest(book, 1, ALICE, SELL, 100, 4)
    events = book.place(2, BOB, BUY, 100, 4)
    assert events == [fill(2, 1, BOB, ALICE, 100, 4, BUY, 0), done(2, FILLED)]
    assert book.best_ask() is None and len(book) == 0


# --- IOC / FOK -------------------------------------------------------------------------


def test_ioc_partial_fill_expires_the_rest(book: OrderBook) -> None:
    rest(book, 1, ALICE, SELL, 100, 2)
    events = book.place(2, BOB, BUY, 100, 5, tif=IOC)
    assert events == [fill(2, 1, BOB, ALICE, 100, 2, BUY, 0), done(2, EXPIRED)]
    assert book.resting(2) is None and len(book) == 0


def test_ioc_full_fill_is_filled(book: OrderBook) -> None:
    rest(book, 1, ALICE, SELL, 100, 5)
    assert book.place(2, BOB, BUY, 100, 5, tif=IOC)[-1] == done(2, FILLED)


def test_ioc_without_liquidity_expires_and_never_rests(book: OrderBook) -> None:
    rest(book, 1, ALICE, SELL, 101, 5)
    assert book.place(2, BOB, BUY, 100, 5, tif=IOC) == [done(2, EXPIRED)]
    assert book.resting(2) is None and book.best_bid() is None


def test_fok_fills_completely_across_levels(book: OrderBook) -> None:
    rest(book, 1, ALICE, SELL, 100, 2)
    rest(book, 2, ALICE, SELL, 101, 3)
    events = book.place(3, BOB, BUY, 101, 5, tif=FOK)
    assert fills(events) == [fill(3, 1, BOB, ALICE, 100, 2, BUY, 0), fill(3, 2, BOB, ALICE, 101, 3, BUY, 0)]
    assert events[-1] == done(3, FILLED)
    assert len(book) == 0


def test_fok_that_cannot_fill_completely_does_nothing(book: OrderBook) -> None:
    rest(book, 1, ALICE, SELL, 100, 2)
    rest(book, 2, ALICE, SELL, 102, 3)  # beyond the limit: does not count
    assert book.place(3, BOB, BUY, 101, 3, tif=FOK) == [done(3, EXPIRED)]
    assert book.resting(1) == (ALICE, SELL, 100, 2)
    assert book.resting(2) == (ALICE, SELL, 102, 3)
    assert book.place(4, BOB, BUY, 200, 6, tif=FOK) == [done(4, EXPIRED)]
    assert book.depth(SELL, 5) == [(100, 2), (102, 3)]


def test_fok_ignores_cancelled_liquidity(book: OrderBook) -> None:
    rest(book, 1, ALICE, SELL, 100, 2)
    rest(book, 2, ALICE, SELL, 100, 2)
    book.cancel(1)
    assert book.place(3, BOB, BUY, 100, 3, tif=FOK) == [done(3, EXPIRED)]
    assert book.place(4, BOB, BUY, 100, 2, tif=FOK)[-1] == done(4, FILLED)


# --- post-only -------------------------------------------------------------------------


def test_post_only_that_would_take_is_rejected(book: OrderBook) -> None:
    rest(book, 1, ALICE, SELL, 100, 2)
    assert book.place(2, BOB, BUY, 100, 1, post_only=True) == [done(2, REJECTED)]
    assert book.place(3, BOB, BUY, 105, 1, post_only=True) == [done(3, REJECTED)]
    assert book.resting(1) == (ALICE, SELL, 100, 2)
    assert book.best_bid() is None


def test_post_only_that_would_not_take_rests(book: OrderBook) -> None:
    rest(book, 1, ALICE, SELL, 100, 2)
    assert book.place(2, BOB, BUY, 99, 1, post_only=True) == [rested(2, BUY, 99, 1)]
    assert book.place(3, BOB, SELL, 101, 1, post_only=True) == [rested(3, SELL, 101, 1)]
    assert book.place(4, BOB, SELL, 99, 1, post_only=True) == [done(4, REJECTED)]


# --- MARKET ----------------------------------------------------------------------------


def test_market_by_qty_sweeps_and_never_rests(book: OrderBook) -> None:
    rest(book, 1, ALICE, SELL, 100, 2)
    rest(book, 2, ALICE, SELL, 150, 2)
    events = book.place(3, BOB, BUY, None, 3, kind=MARKET)
    assert events == [
        fill(3, 1, BOB, ALICE, 100, 2, BUY, 0),
        fill(3, 2, BOB, ALICE, 150, 1, BUY, 1),
        done(3, FILLED),
    ]
    events = book.place(4, BOB, BUY, None, 5, kind=MARKET, tif=IOC)
    assert events == [fill(4, 2, BOB, ALICE, 150, 1, BUY, 0), done(4, EXPIRED)]
    assert len(book) == 0 and book.best_bid() is None


def test_market_sell(book: OrderBook) -> None:
    rest(book, 1, ALICE, BUY, 100, 2)
    rest(book, 2, ALICE, BUY, 90, 2)
    events = book.place(3, BOB, SELL, None, 4, kind=MARKET)
    assert fills(events) == [fill(3, 1, BOB, ALICE, 100, 2, SELL, 0), fill(3, 2, BOB, ALICE, 90, 2, SELL, 0)]
    assert events[-1] == done(3, FILLED)


def test_market_on_an_empty_side_expires(book: OrderBook) -> None:
    rest(book, 1, ALICE, BUY, 100, 2)
    assert book.place(2, BOB, BUY, None, 1, kind=MARKET) == [done(2, EXPIRED)]
    assert book.place(3, BOB, BUY, None, None, kind=MARKET, quote_budget=1_000) == [done(3, EXPIRED)]
    assert len(book) == 1


def test_market_protection_cap_is_never_crossed(book: OrderBook) -> None:
    rest(book, 1, ALICE, SELL, 100, 1)
    rest(book, 2, ALICE, SELL, 101, 1)
    rest(book, 3, ALICE, SELL, 102, 1)
    events = book.place(4, BOB, BUY, 101, 5, kind=MARKET)
    assert [f[F_PRICE] for f in fills(events)] == [100, 101]
    assert events[-1] == done(4, EXPIRED)
    assert book.best_ask() == 102 and book.resting(4) is None
    rest(book, 5, ALICE, BUY, 99, 1)
    rest(book, 6, ALICE, BUY, 98, 1)
    events = book.place(7, BOB, SELL, 99, 2, kind=MARKET)
    assert fills(events) == [fill(7, 5, BOB, ALICE, 99, 1, SELL, 0)]
    assert events[-1] == done(7, EXPIRED)
    assert book.place(8, BOB, SELL, 100, 1, kind=MARKET) == [done(8, EXPIRED)]


def test_market_by_quote_budget_math_is_exact(book: OrderBook) -> None:
    rest(book, 1, ALICE, SELL, 100, 2)
    rest(book, 2, ALICE, SELL, 101, 5)
    rest(book, 3, ALICE, SELL, 103, 5)
    # 350: 2 lots @100 (200, left 150), 1 lot @101 (101, left 49): 49 // 101 == 0 -> FILLED.
    events = book.place(4, BOB, BUY, None, None, kind=MARKET, quote_budget=350)
    assert events == [
        fill(4, 1, BOB, ALICE, 100, 2, BUY, 0),
        fill(4, 2, BOB, ALICE, 101, 1, BUY, 4),
        done(4, FILLED),
    ]
    assert book.resting(2) == (ALICE, SELL, 101, 4)
    # Exactly spent: 4 lots @101 = 404 -> FILLED, maker 2 emptied, maker 3 untouched.
    events = book.place(5, BOB, BUY, None, None, kind=MARKET, quote_budget=404)
    assert events == [fill(5, 2, BOB, ALICE, 101, 4, BUY, 0), done(5, FILLED)]
    assert book.resting(3) == (ALICE, SELL, 103, 5)


def test_market_by_quote_budget_that_outlasts_the_book_expires(book: OrderBook) -> None:
    rest(book, 1, ALICE, SELL, 100, 2)
    events = book.place(2, BOB, BUY, None, None, kind=MARKET, quote_budget=1_000)
    assert events == [fill(2, 1, BOB, ALICE, 100, 2, BUY, 0), done(2, EXPIRED)]


def test_market_by_quote_budget_too_small_for_one_lot_expires(book: OrderBook) -> None:
    rest(book, 1, ALICE, SELL, 100, 2)
    assert book.place(2, BOB, BUY, None, None, kind=MARKET, quote_budget=99) == [done(2, EXPIRED)]
    assert book.resting(1) == (ALICE, SELL, 100, 2)


def test_market_by_quote_budget_respects_the_cap(book: OrderBook) -> None:
    rest(book, 1, ALICE, SELL, 100, 1)
    rest(book, 2, ALICE, SELL, 110, 1)
    events = book.place(3, BOB, BUY, 105, None, kind=MARKET, quote_budget=1_000)
    assert events == [fill(3, 1, BOB, ALICE, 100, 1, BUY, 0), done(3, EXPIRED)]


def test_market_by_quote_budget_skips_cancelled_makers(book: OrderBook) -> None:
    rest(book, 1, ALICE, SELL, 100, 1)
    rest(book, 2, CAROL, SELL, 100, 3)
    book.cancel(1)
    events = book.place(3, BOB, BUY, None, None, kind=MARKET, quote_budget=250)
    assert events == [fill(3, 2, BOB, CAROL, 100, 2, BUY, 1), done(3, FILLED)]


# --- self-trade prevention -------------------------------------------------------------


def _own_liquidity_book(book: OrderBook) -> None:
    """Asks: 100 -> BOB 1 lot, then ALICE 2 lots (same level), then BOB 5 lots @101."""
    rest(book, 1, BOB, SELL, 100, 1)
    rest(book, 2, ALICE, SELL, 100, 2)
    rest(book, 3, BOB, SELL, 101, 5)


def test_stp_none_lets_a_user_trade_with_itself(book: OrderBook) -> None:
    _own_liquidity_book(book)
    events = book.place(9, ALICE, BUY, 100, 3)
    assert fills(events) == [fill(9, 1, ALICE, BOB, 100, 1, BUY, 0), fill(9, 2, ALICE, ALICE, 100, 2, BUY, 0)]
    assert events[-1] == done(9, FILLED)


def test_stp_expire_taker_stops_at_the_own_order(book: OrderBook) -> None:
    _own_liquidity_book(book)
    events = book.place(9, ALICE, BUY, 101, 5, stp=STP_EXPIRE_TAKER)
    assert events == [fill(9, 1, ALICE, BOB, 100, 1, BUY, 0), done(9, EXPIRED)]
    assert book.resting(2) == (ALICE, SELL, 100, 2)
    assert book.resting(9) is None


def test_stp_expire_maker_removes_the_own_order_and_goes_on(book: OrderBook) -> None:
    _own_liquidity_book(book)
    events = book.place(9, ALICE, BUY, 101, 5, stp=STP_EXPIRE_MAKER)
    assert events == [
        fill(9, 1, ALICE, BOB, 100, 1, BUY, 0),
        done(2, EXPIRED),
        fill(9, 3, ALICE, BOB, 101, 4, BUY, 1),
        done(9, FILLED),
    ]
    assert book.resting(2) is None
    assert book.resting(3) == (BOB, SELL, 101, 1)


def test_stp_expire_maker_then_rests_the_rest(book: OrderBook) -> None:
    rest(book, 1, ALICE, SELL, 100, 2)
    events = book.place(2, ALICE, BUY, 100, 3, stp=STP_EXPIRE_MAKER)
    assert events == [done(1, EXPIRED), rested(2, BUY, 100, 3)]
    assert book.best_ask() is None and book.best_bid() == 100


def test_stp_expire_both_removes_the_maker_and_ends_the_taker(book: OrderBook) -> None:
    _own_liquidity_book(book)
    events = book.place(9, ALICE, BUY, 101, 5, stp=STP_EXPIRE_BOTH)
    assert events == [fill(9, 1, ALICE, BOB, 100, 1, BUY, 0), done(2, EXPIRED), done(9, EXPIRED)]
    assert book.resting(2) is None and book.resting(9) is None
    assert book.depth(SELL, 5) == [(101, 5)]


def test_stp_applies_to_market_orders(book: OrderBook) -> None:
    rest(book, 1, ALICE, BUY, 100, 2)
    rest(book, 2, BOB, BUY, 99, 2)
    events = book.place(3, ALICE, SELL, None, 3, kind=MARKET, stp=STP_EXPIRE_MAKER)
    assert events == [done(1, EXPIRED), fill(3, 2, ALICE, BOB, 99, 2, SELL, 0), done(3, EXPIRED)]


def test_stp_with_quote_budget(book: OrderBook) -> None:
    _own_liquidity_book(book)
    events = book.place(9, ALICE, BUY, None, None, kind=MARKET, quote_budget=302, stp=STP_EXPIRE_MAKER)
    # 1 @100 from BOB (left 202), ALICE's maker expired, 2 @101 from BOB (left 0).
    assert events == [
        fill(9, 1, ALICE, BOB, 100, 1, BUY, 0),
        done(2, EXPIRED),
        fill(9, 3, ALICE, BOB, 101, 2, BUY, 3),
        done(9, FILLED),
    ]
    events = book.place(10, BOB, BUY, None, None, kind=MARKET, quote_budget=1_000, stp=STP_EXPIRE_TAKER)
    assert events == [done(10, EXPIRED)]
    assert book.resting(3) == (BOB, SELL, 101, 3)


def test_fok_with_own_liquidity_and_expire_maker(book: OrderBook) -> None:
    _own_liquidity_book(book)  # others' liquidity up to 101: 1 + 5 = 6
    assert book.place(9, ALICE, BUY, 101, 7, tif=FOK, stp=STP_EXPIRE_MAKER) == [done(9, EXPIRED)]
    assert book.resting(2) == (ALICE, SELL, 100, 2)  # nothing was touched
    events = book.place(10, ALICE, BUY, 101, 6, tif=FOK, stp=STP_EXPIRE_MAKER)
    assert events == [
        fill(10, 1, ALICE, BOB, 100, 1, BUY, 0),
        done(2, EXPIRED),
        fill(10, 3, ALICE, BOB, 101, 5, BUY, 0),
        done(10, FILLED),
    ]


def test_fok_with_own_liquidity_and_expire_taker_counts_up_to_the_own_order(book: OrderBook) -> None:
    _own_liquidity_book(book)  # only BOB's 1 lot comes before ALICE's own order
    for stp in (STP_EXPIRE_TAKER, STP_EXPIRE_BOTH):
        assert book.place(9, ALICE, BUY, 101, 2, tif=FOK, stp=stp) == [done(9, EXPIRED)]
        assert book.depth(SELL, 5) == [(100, 3), (101, 5)]
    events = book.place(10, ALICE, BUY, 101, 1, tif=FOK, stp=STP_EXPIRE_BOTH)
    assert events == [fill(10, 1, ALICE, BOB, 100, 1, BUY, 0), done(10, FILLED)]
    assert book.resting(2) == (ALICE, SELL, 100, 2)


def test_fok_with_own_liquidity_and_stp_none_counts_it(book: OrderBook) -> None:
    _own_liquidity_book(book)
    assert book.place(9, ALICE, BUY, 100, 3, tif=FOK)[-1] == done(9, FILLED)


# --- cancel ----------------------------------------------------------------------------


def test_cancel_a_resting_order(book: OrderBook) -> None:
    rest(book, 1, ALICE, BUY, 100, 5)
    rest(book, 2, ALICE, BUY, 100, 3)
    assert book.cancel(1) == [done(1, CANCELLED)]
    book.check_invariants()
    assert book.resting(1) is None and len(book) == 1
    assert book.depth(BUY, 5) == [(100, 3)]
    assert book.cancel(2) == [done(2, CANCELLED)]
    assert book.best_bid() is None and book.depth(BUY, 5) == []


def test_cancel_unknown_twice_and_after_fill_are_ignored(book: OrderBook) -> None:
    assert book.cancel(42) == []
    rest(book, 1, ALICE, SELL, 100, 1)
    assert book.cancel(1) == [done(1, CANCELLED)]
    assert book.cancel(1) == []
    rest(book, 2, ALICE, SELL, 100, 1)
    book.place(3, BOB, BUY, 100, 1)
    assert book.cancel(2) == []
    assert book.cancel(3) == []


def test_cancelled_orders_are_skipped_by_matching(book: OrderBook) -> None:
    rest(book, 1, ALICE, SELL, 100, 1)
    rest(book, 2, BOB, SELL, 100, 1)
    rest(book, 3, CAROL, SELL, 101, 1)
    book.cancel(1)
    book.cancel(3)
    book.check_invariants()
    assert book.best_ask() == 100
    events = book.place(4, CAROL, BUY, 101, 2)
    assert events == [fill(4, 2, CAROL, BOB, 100, 1, BUY, 0), rested(4, BUY, 101, 1)]


def test_cancelling_the_best_level_moves_the_best_price(book: OrderBook) -> None:
    rest(book, 1, ALICE, SELL, 100, 1)
    rest(book, 2, ALICE, SELL, 103, 1)
    rest(book, 3, ALICE, BUY, 97, 1)
    rest(book, 4, ALICE, BUY, 95, 1)
    book.cancel(1)
    book.cancel(3)
    assert (book.best_bid(), book.best_ask()) == (95, 103)


def test_many_cancels_in_one_level_compact_it(book: OrderBook) -> None:
    for i in range(1, 201):
        book.place(i, ALICE, SELL, 100, 1)
    for i in range(2, 200):
        book.cancel(i)
        if i % 50 == 0:
            book.check_invariants()
    assert book.depth(SELL, 1) == [(100, 2)]
    events = book.place(500, BOB, BUY, 100, 5)
    assert fills(events) == [fill(500, 1, BOB, ALICE, 100, 1, BUY, 0), fill(500, 200, BOB, ALICE, 100, 1, BUY, 0)]


# --- restore ---------------------------------------------------------------------------


def test_restore_appends_in_call_order_without_events(book: OrderBook) -> None:
    assert book.restore(7, ALICE, SELL, 100, 2) is None
    book.restore(3, BOB, SELL, 100, 2)  # later call, lower id: still behind 7
    book.restore(5, BOB, BUY, 98, 4)
    book.check_invariants()
    assert len(book) == 3
    assert book.depth(SELL, 5) == [(100, 4)]
    events = book.place(9, CAROL, BUY, 100, 3)
    assert fills(events) == [fill(9, 7, CAROL, ALICE, 100, 2, BUY, 0), fill(9, 3, CAROL, BOB, 100, 1, BUY, 1)]


def test_restore_rejects_duplicates_bad_values_and_crossing(book: OrderBook) -> None:
    book.restore(1, ALICE, SELL, 100, 2)
    with pytest.raises(ValueError, match="already"):
        book.restore(1, ALICE, SELL, 101, 2)
    with pytest.raises(ValueError, match="cross"):
        book.restore(2, ALICE, BUY, 100, 2)
    with pytest.raises(ValueError):
        book.restore(3, ALICE, BUY, 99, 0)
    with pytest.raises(ValueError):
        book.restore(4, ALICE, 7, 99, 1)
    assert len(book) == 1


# --- depth and reads -------------------------------------------------------------------


def test_depth_is_best_first_and_aggregated(book: OrderBook) -> None:
    for oid, (side, price, qty) in enumerate(
        [(BUY, 99, 1), (BUY, 100, 2), (BUY, 99, 3), (BUY, 97, 4), (SELL, 101, 5), (SELL, 103, 6), (SELL, 101, 7)],
        start=1,
    ):
        rest(book, oid, ALICE, side, price, qty)
    assert book.depth(BUY, 10) == [(100, 2), (99, 4), (97, 4)]
    assert book.depth(BUY, 2) == [(100, 2), (99, 4)]
    assert book.depth(SELL, 10) == [(101, 12), (103, 6)]
    assert book.depth(SELL, 1) == [(101, 12)]
    assert book.depth(SELL, 0) == []
    book.place(8, BOB, BUY, 101, 6)
    assert book.depth(SELL, 10) == [(101, 6), (103, 6)]


def test_empty_book_reads(book: OrderBook) -> None:
    assert book.best_bid() is None and book.best_ask() is None
    assert book.depth(BUY, 5) == [] and book.depth(SELL, 5) == []
    assert book.resting(1) is None and len(book) == 0


# --- validation ------------------------------------------------------------------------


def test_duplicate_id_is_refused(book: OrderBook) -> None:
    rest(book, 1, ALICE, BUY, 100, 1)
    for kwargs in ({}, {"tif": IOC}, {"post_only": True}, {"stp": STP_EXPIRE_MAKER}):
        with pytest.raises(ValueError, match="already"):
            book.place(1, ALICE, BUY, 100, 1, **kwargs)
    assert book.resting(1) == (ALICE, BUY, 100, 1)


@pytest.mark.parametrize(
    ("args", "kwargs"),
    [
        ((BUY, 100, 0), {}),
        ((BUY, 100, -3), {}),
        ((SELL, 100, 0), {"tif": FOK}),
        ((BUY, 0, 1), {}),
        ((BUY, -5, 1), {"tif": IOC}),
        ((BUY, None, 1), {}),
        ((BUY, 100, None), {}),
        ((BUY, None, None), {"kind": MARKET}),
        ((BUY, None, 0), {"kind": MARKET}),
        ((SELL, None, None), {"kind": MARKET, "quote_budget": 100}),
        ((BUY, None, 1), {"kind": MARKET, "quote_budget": 100}),
        ((BUY, None, None), {"kind": MARKET, "quote_budget": 0}),
        ((BUY, 100, None), {"kind": LIMIT, "quote_budget": 100}),
        ((BUY, None, 1), {"kind": MARKET, "post_only": True}),
        ((2, 100, 1), {}),
        ((-1, 100, 1), {}),
        ((BUY, 100, 1), {"kind": 5}),
        ((BUY, 100, 1), {"tif": 9}),
        ((BUY, 100, 1), {"stp": 9}),
        ((BUY, None, 1), {"kind": MARKET, "tif": 9}),
        ((BUY, None, None), {"kind": MARKET, "quote_budget": 100.5}),
    ],
)
def test_invalid_orders_are_refused(book: OrderBook, args: tuple, kwargs: dict) -> None:
    rest(book, 1, ALICE, SELL, 100, 5)
    with pytest.raises(ValueError):
        book.place(2, BOB, *args, **kwargs)
    assert book.resting(1) == (ALICE, SELL, 100, 5) and len(book) == 1


def test_constants() -> None:
    assert (BUY, SELL, LIMIT, MARKET, GTC, IOC, FOK) == (0, 1, 0, 1, 0, 1, 2)
    assert (STP_NONE, STP_EXPIRE_TAKER, STP_EXPIRE_MAKER, STP_EXPIRE_BOTH) == (0, 1, 2, 3)
    assert (FILLED, CANCELLED, EXPIRED, REJECTED) == ("filled", "cancelled", "expired", "rejected")
    assert (FILL, RESTED, DONE) == (0, 1, 2)
    assert FIELDS[FILL] == (
        "taker_id",
        "maker_id",
        "taker_user",
        "maker_user",
        "price",
        "qty",
        "taker_side",
        "maker_left",
    )
    assert FIELDS[RESTED] == ("order_id", "side", "price", "qty")
    assert FIELDS[DONE] == ("order_id", "status")
    f = fill(9, 1, BOB, ALICE, 100, 3, BUY, 2)
    assert (f[F_TAKER], f[F_MAKER], f[F_PRICE], f[F_QTY], f[F_MAKER_LEFT]) == (9, 1, 100, 3, 2)
    assert describe(f) == {
        "event": "fill",
        "taker_id": 9,
        "maker_id": 1,
        "taker_user": BOB,
        "maker_user": ALICE,
        "price": 100,
        "qty": 3,
        "taker_side": BUY,
        "maker_left": 2,
    }
    assert describe(rested(4, SELL, 101, 7)) == {"event": "rested", "order_id": 4, "side": SELL, "price": 101, "qty": 7}
    assert describe(done(4, CANCELLED)) == {"event": "done", "order_id": 4, "status": CANCELLED}
    for bad in ((), (7, 1), (FILL, 1, 2), (DONE, 1, FILLED, 0), ("fill", 1, 2, 3, 4, 5, 6, 7, 8)):
        with pytest.raises(ValueError):
            describe(bad)


def test_events_are_plain_tuples(book: OrderBook) -> None:
    rest(book, 1, ALICE, SELL, 100, 2)
    events = book.place(2, BOB, BUY, 100, 3)
    assert [type(e) for e in events] == [tuple, tuple]
    assert [describe(e)["event"] for e in events] == ["fill", "rested"]
    assert [type(e) for e in book.cancel(2)] == [tuple]


# --- property tests against an obviously correct model ---------------------------------


class Model:
    """A slow book that states the rules as plainly as possible.

    Orders rest in one list in arrival order; the next maker is the best
    price on the other side, earliest first (``min``/``max`` return the first
    of equal elements).  FOK is "try it on a copy; keep it if it filled".
    """

    def __init__(self) -> None:
        self.resting: list[list] = []  # [order_id, user, side, price, qty]

    def _next_maker(self, side: int, cap: int | None) -> list | None:
        others = [o for o in self.resting if o[2] != side]
        if not others:
            return None
        best = min(others, key=lambda o: o[3]) if side == BUY else max(others, key=lambda o: o[3])
        if cap is not None and (best[3] > cap if side == BUY else best[3] < cap):
            return None
        return best

    def place(self, oid, user, side, price, qty, kind, tif, post_only, stp, budget) -> list:
        if kind == LIMIT and post_only:
            if self._next_maker(side, price) is not None:
                return [done(oid, REJECTED)]
            self.resting.append([oid, user, side, price, qty])
            return [rested(oid, side, price, qty)]
        if kind == LIMIT and tif == FOK:
            trial = copy.deepcopy(self)
            if trial._take(oid, user, side, price, qty, stp, None)[1] != 0:
                return [done(oid, EXPIRED)]
        events, left, stopped = self._take(oid, user, side, price, qty, stp, budget)
        if budget is not None:
            filled = any(e[0] == FILL for e in events)
            if not filled or stopped:
                status = EXPIRED
            elif left == 0:
                status = FILLED
            else:
                maker = self._next_maker(side, price)
                status = FILLED if maker is not None and left // maker[3] == 0 else EXPIRED
            return [*events, done(oid, status)]
        if left == 0:
            return [*events, done(oid, FILLED)]
        if stopped or kind == MARKET or tif != GTC:
            return [*events, done(oid, EXPIRED)]
        self.resting.append([oid, user, side, price, left])
        return [*events, rested(oid, side, price, left)]

    def _take(self, oid, user, side, price, qty, stp, budget) -> tuple[list, int, bool]:
        """Match; return (events, qty or budget left, stopped by STP)."""
        events: list = []
        left = budget if budget is not None else qty
        while left:
            maker = self._next_maker(side, price)
            if maker is None:
                break
            mid, muser, _mside, mprice, mqty = maker
            if budget is not None and left // mprice == 0:
                break
            if stp != STP_NONE and muser == user:
                if stp == STP_EXPIRE_TAKER:
                    return events, left, True
                self.resting.remove(maker)
                events.append(done(mid, EXPIRED))
                if stp == STP_EXPIRE_BOTH:
                    return events, left, True
                continue
            lots = min(mqty, left if budget is None else left // mprice)
            maker[4] -= lots
            events.append(fill(oid, mid, user, muser, mprice, lots, side, maker[4]))
            left -= lots if budget is None else lots * mprice
            if maker[4] == 0:  # filled completely: said by maker_left == 0, no event of its own
                self.resting.remove(maker)
        return events, left, False

    def cancel(self, oid: int) -> list:
        for o in self.resting:
            if o[0] == oid:
                self.resting.remove(o)
                return [done(oid, CANCELLED)]
        return []

    def depth(self, side: int) -> list[tuple[int, int]]:
        totals: dict[int, int] = {}
        for o in self.resting:
            if o[2] == side:
                totals[o[3]] = totals.get(o[3], 0) + o[4]
        return sorted(totals.items(), reverse=side == BUY)


def _assert_same_book(book: OrderBook, model: Model) -> None:
    book.check_invariants()
    assert len(book) == len(model.resting)
    for side in (BUY, SELL):
        assert book.depth(side, 1_000) == model.depth(side)
    for oid, user, side, price, qty in model.resting:
        assert book.resting(oid) == (user, side, price, qty)


# Few users, few prices and budgets near multiples of the prices, so that
# self-trades, shared levels, exact spends and "one lot short" budgets are common.
_budget = st.builds(
    lambda lots, extra: max(lots * 100 + extra, 1), st.integers(0, 10), st.sampled_from((0, 1, 3, 50, 99, 100, 101))
)
_place = st.fixed_dictionaries(
    {
        "op": st.just("place"),
        "user": st.integers(1, 2),
        "side": st.sampled_from((BUY, SELL)),
        "kind": st.sampled_from((LIMIT, LIMIT, MARKET)),
        "tif": st.sampled_from((GTC, GTC, IOC, FOK, FOK)),
        "post_only": st.sampled_from((False, False, False, True)),
        "stp": st.sampled_from((STP_NONE, STP_EXPIRE_TAKER, STP_EXPIRE_MAKER, STP_EXPIRE_BOTH)),
        "price": st.integers(97, 103),
        "capped": st.booleans(),
        "qty": st.integers(1, 6),
        "budget": st.one_of(st.none(), _budget),
    }
)
_cancel = st.fixed_dictionaries({"op": st.just("cancel"), "target": st.integers(1, 80)})
_restore = st.fixed_dictionaries(
    {
        "op": st.just("restore"),
        "user": st.integers(1, 2),
        "side": st.sampled_from((BUY, SELL)),
        "price": st.integers(97, 103),
        "qty": st.integers(1, 6),
    }
)


@settings(max_examples=400, deadline=None)
@given(st.lists(st.one_of(_place, _place, _place, _place, _cancel, _restore), min_size=15, max_size=60))
def test_random_flows_match_the_model(steps: list[dict]) -> None:
    book, model = OrderBook(), Model()
    for oid, step in enumerate(steps, start=1):
        if step["op"] == "cancel":
            assert book.cancel(step["target"]) == model.cancel(step["target"])
        elif step["op"] == "restore":
            side, price = step["side"], step["price"]
            if model._next_maker(side, price) is not None:
                continue  # would cross: restore refuses it (tested elsewhere)
            book.restore(oid, step["user"], side, price, step["qty"])
            model.resting.append([oid, step["user"], side, price, step["qty"]])
        else:
            kind, side = step["kind"], step["side"]
            price, qty, budget = step["price"], step["qty"], None
            post_only, tif = step["post_only"], step["tif"]
            if kind == MARKET:
                post_only = False
                price = price if step["capped"] else None
                if side == BUY and step["budget"] is not None:
                    qty, budget = None, step["budget"]
            args = (oid, step["user"], side, price, qty)
            opts = {"kind": kind, "tif": tif, "post_only": post_only, "stp": step["stp"], "quote_budget": budget}
            events = book.place(*args, **opts)
            expected = model.place(*args, kind, tif, post_only, step["stp"], budget)
            assert events == expected
            assert events[-1][0] in (RESTED, DONE)
            assert events[-1][1] == oid
            assert all(e[0] != RESTED for e in events[:-1])
            assert all(e[1] != oid for e in events[:-1] if e[0] == DONE)
            assert all(e[F_TAKER] == oid for e in events if e[0] == FILL)
            assert all(type(e) is tuple for e in events)
        _assert_same_book(book, model)


# --- property test against the shared workload's reference book ------------------------

_WORKLOAD = Path(__file__).resolve().parents[3] / "shared" / "bench" / "workload.py"


def _load_workload():
    if not _WORKLOAD.exists():
        pytest.skip(f"shared workload not found at {_WORKLOAD}")
    spec = importlib.util.spec_from_file_location("shared_workload_for_tests", _WORKLOAD)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_flow_step = st.one_of(
    st.tuples(st.just("limit"), st.sampled_from(("buy", "sell")), st.integers(95, 105), st.integers(1, 9)),
    st.tuples(st.just("market"), st.sampled_from(("buy", "sell")), st.none(), st.integers(1, 15)),
    st.tuples(st.just("cancel"), st.integers(1, 60), st.none(), st.none()),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(_flow_step, max_size=80))
def test_random_flows_match_the_reference_book(steps: list[tuple]) -> None:
    workload = _load_workload()
    ref = workload.ReferenceBook()
    book = OrderBook()
    trades = []
    for oid, (op, a, price, qty) in enumerate(steps, start=1):
        if op == "cancel":
            ref.apply("cancel", a, None, None, None)
            book.cancel(a)
        else:
            ref.apply(op, oid, a, price, qty)
            kind = LIMIT if op == "limit" else MARKET
            events = book.place(oid, 1 + oid % 3, BUY if a == "buy" else SELL, price, qty, kind=kind)
            trades += [(f[F_TAKER], f[F_MAKER], f[F_PRICE], f[F_QTY]) for f in fills(events)]
        book.check_invariants()
    digest = hashlib.sha256("".join(f"{t},{m},{p},{q}\n" for t, m, p, q in trades).encode())
    bids = sum(q for _, q in book.depth(BUY, 1_000))
    asks = sum(q for _, q in book.depth(SELL, 1_000))
    ours = (
        f"trades={len(trades)} volume={sum(t[3] for t in trades)} "
        f"notional={sum(t[2] * t[3] for t in trades)} bids={bids} asks={asks} digest={digest.hexdigest()[:16]}"
    )
    assert ours == ref.summary()


@pytest.mark.parametrize("seed", [1, 7, 42])
def test_generated_workload_matches_the_reference_book(seed: int) -> None:
    workload = _load_workload()
    ref = workload.ReferenceBook()
    book = OrderBook()
    sides = {"buy": BUY, "sell": SELL}
    trades = 0
    for i, (op, oid, user, side, price, qty) in enumerate(workload.generate(3_000, seed)):
        ref.apply(op, oid, side, price, qty)
        if op == "cancel":
            book.cancel(oid)
        else:
            kind = LIMIT if op == "limit" else MARKET
            trades += len(fills(book.place(oid, user, sides[side], price, qty, kind=kind)))
        if i % 500 == 0:
            book.check_invariants()
    book.check_invariants()
    assert trades == ref.trades
    for side, name in ((BUY, "buy"), (SELL, "sell")):
        expected = sorted(((p, sum(o[1] for o in lv)) for p, lv in ref.levels[name].items()), reverse=side == BUY)
        assert book.depth(side, 10_000) == expected
