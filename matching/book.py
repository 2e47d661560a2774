"""A limit order book for one market: commands in, events out, integers only, no Django.

Prices are integer ticks and quantities integer lots, so nothing rounds.
Matching is price-time priority and a trade executes at the resting (maker)
order's price.  The book is a cache of the open orders in the database: the
engine rebuilds it with ``restore`` on every start and feeds it ``place`` and
``cancel``; it never decides anything about money.

Layout, chosen for the hot path (the replay benchmark in ``bench/engine.py``
runs a million orders through it and must keep up with a deliberately plain
reference book):

* An order is a 5-slot list ``[order_id, user_id, side, key, qty]``, not an
  object: creating and indexing a small list is the cheapest mutable record
  CPython has.
* Each side keeps its prices as *keys* in one ascending ``list`` so that the
  best price is always the **last** element: bids use ``key = price``, asks
  ``key = -price``.  Taking out the best level is then ``list.pop()`` and a
  new level near the touch is a short ``insort`` near the end; one matching
  loop serves both sides ("acceptable" is always ``key >= limit_key``).
* A level is ``[total_lots, deque_of_orders, dead_entries, price]``.  FIFO
  order in the deque gives time priority; the price is kept so a fill need
  not turn the key back into a price.
* Cancel is O(1): the order leaves the id index, its qty is set to 0 and the
  level total is fixed at once; the dead entry stays in the deque until it
  reaches the head (or the level is compacted once dead entries dominate).
  A level whose total reaches 0 is removed immediately, so the best key is
  always a level with live quantity.
* Events are plain tagged tuples (``(FILL, ...)``, ``(RESTED, ...)``,
  ``(DONE, ...)``; layouts in ``matching.events``), the cheapest object to
  build: a ``NamedTuple`` cost about 100 ns more per event, which was most of
  the gap to the reference book.  A FILL carries the maker's remaining lots,
  so a maker that fills completely needs no event of its own.
* ``place`` has a fast path for LIMIT GTC/IOC and MARKET-by-qty orders
  without self-trade prevention or post-only, with the matching loop
  inlined; every other case goes through ``_place_other`` / ``_match``.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections import deque
from itertools import pairwise

from matching.events import (
    BUY,
    CANCELLED,
    DONE,
    EXPIRED,
    FILL,
    FILLED,
    FOK,
    GTC,
    IOC,
    LIMIT,
    MARKET,
    REJECTED,
    RESTED,
    SELL,
    STP_EXPIRE_BOTH,
    STP_EXPIRE_MAKER,
    STP_EXPIRE_TAKER,
    STP_NONE,
    Event,
    describe,
)

__all__ = [
    "BUY",
    "CANCELLED",
    "DONE",
    "EXPIRED",
    "FILL",
    "FILLED",
    "FOK",
    "GTC",
    "IOC",
    "LIMIT",
    "MARKET",
    "REJECTED",
    "RESTED",
    "SELL",
    "STP_EXPIRE_BOTH",
    "STP_EXPIRE_MAKER",
    "STP_EXPIRE_TAKER",
    "STP_NONE",
    "Event",
    "OrderBook",
    "describe",
]

# Slots of an order record.
_ID, _USER, _SIDE, _KEY, _QTY = range(5)
# Slots of a level record.
_TOTAL, _QUEUE, _DEAD, _PRICE = range(4)

# A limit key below every real one: a market order without a protection cap.
_NO_LIMIT = -(1 << 63)
# Compact a level's deque once it holds this many dead entries and they are the majority.
_COMPACT_AT = 32

_SIDES = (BUY, SELL)
_TIFS = (GTC, IOC, FOK)
_STPS = (STP_NONE, STP_EXPIRE_TAKER, STP_EXPIRE_MAKER, STP_EXPIRE_BOTH)


class OrderBook:
    """The resting orders of one market and the rules that match new ones against them.

    Not thread-safe: one engine process owns one market's book.
    """

    __slots__ = ("_keys", "_levels", "_orders")

    def __init__(self) -> None:
        # order id -> order record, for every live resting order (and only those).
        self._orders: dict[int, list] = {}
        # Per side (index BUY / SELL): key -> level record, and the sorted keys.
        self._levels: tuple[dict[int, list], dict[int, list]] = ({}, {})
        self._keys: tuple[list[int], list[int]] = ([], [])

    # --- reads ---------------------------------------------------------------------------

    def __len__(self) -> int:
        """Number of resting orders."""
        return len(self._orders)

    def best_bid(self) -> int | None:
        """Highest bid price, or None when there are no bids.  O(1)."""
        keys = self._keys[BUY]
        return keys[-1] if keys else None

    def best_ask(self) -> int | None:
        """Lowest ask price, or None when there are no asks.  O(1)."""
        keys = self._keys[SELL]
        return -keys[-1] if keys else None

    def depth(self, side: int, limit: int) -> list[tuple[int, int]]:
        """The best ``limit`` levels of ``side``, best first, as ``(price, total lots)``."""
        if side not in _SIDES:
            raise ValueError(f"unknown side {side!r}")
        if limit <= 0:
            return []
        levels = self._levels[side]
        sign = -1 if side == SELL else 1
        return [(sign * k, levels[k][_TOTAL]) for k in self._keys[side][-1 : -limit - 1 : -1]]

    def level_quantity(self, side: int, price: int) -> int:
        """Total lots resting at ``price`` on ``side`` (0 when there is no such level).  O(1)."""
        level = self._levels[side].get(-price if side == SELL else price)
        return level[_TOTAL] if level is not None else 0

    def resting(self, order_id: int) -> tuple[int, int, int, int] | None:
        """``(user_id, side, price, remaining_qty)`` of a resting order, or None if it is not on the book."""
        o = self._orders.get(order_id)
        if o is None:
            return None
        side = o[_SIDE]
        return o[_USER], side, -o[_KEY] if side == SELL else o[_KEY], o[_QTY]

    # --- writes --------------------------------------------------------------------------

    def restore(self, order_id: int, user_id: int, side: int, price: int, qty: int) -> None:
        """Append a resting order at the back of its level: no matching, no events.

        Used to rebuild the book from the database; call it in time priority
        order (e.g. by the order's book sequence).  A restore that would cross
        the book means the stored state is inconsistent, so it raises rather
        than silently matching or hiding it.
        """
        if order_id in self._orders:
            raise ValueError(f"order {order_id} is already on the book")
        if side not in _SIDES:
            raise ValueError(f"unknown side {side!r}")
        _check_price(price)
        _check_qty(qty)
        opposite = self._keys[side ^ 1]
        if opposite and opposite[-1] >= (-price if side == BUY else price):
            raise ValueError(f"restoring order {order_id} at {price} would cross the book")
        self._rest(order_id, user_id, side, price, qty)

    def cancel(self, order_id: int) -> list[Event]:
        """Take a resting order off the book: ``[(DONE, order_id, CANCELLED)]``.

        An id that is not resting (already filled, cancelled, expired, or never
        seen) is ignored and gives ``[]``: cancels race with fills by nature.
        """
        o = self._orders.pop(order_id, None)
        if o is None:
            return []
        side = o[_SIDE]
        key = o[_KEY]
        qty = o[_QTY]
        o[_QTY] = 0  # lazy deletion: the deque entry is now dead
        levels = self._levels[side]
        level = levels[key]
        total = level[_TOTAL] - qty
        if total:
            level[_TOTAL] = total
            dead = level[_DEAD] + 1
            queue = level[_QUEUE]
            if dead >= _COMPACT_AT and dead * 2 > len(queue):
                # Bound the memory of a long-lived level with heavy churn.
                level[_QUEUE] = deque([e for e in queue if e[_QTY]])
                dead = 0
            level[_DEAD] = dead
        else:
            del levels[key]
            keys = self._keys[side]
            del keys[bisect_left(keys, key)]
        return [(DONE, order_id, CANCELLED)]

    def place(
        self,
        order_id: int,
        user_id: int,
        side: int,
        price: int | None,
        qty: int | None,
        kind: int = LIMIT,
        tif: int = GTC,
        post_only: bool = False,
        stp: int = STP_NONE,
        quote_budget: int | None = None,
    ) -> list[Event]:
        """Match a new order against the book and return its events in execution order.

        The taker's own outcome is always the last event: exactly one
        ``RESTED`` (its unfilled rest now rests) or one ``DONE``.  Before it
        come the ``FILL``s (``maker_left == 0`` in a FILL means it emptied
        that maker, which left the book FILLED; no separate event says so),
        and ``(DONE, maker, EXPIRED)`` for makers removed by
        self-trade prevention.

        ``price`` is the limit of a LIMIT order, and the protection cap (or
        None) of a MARKET order.  A MARKET buy may give ``qty=None`` and a
        ``quote_budget`` (ticks x lots) instead.  MARKET orders never rest,
        whatever ``tif`` says.  ``post_only`` orders never take liquidity
        and rest whatever ``tif`` says; one that would match is REJECTED.

        Raises ValueError for an id already resting, a non-positive quantity,
        price or budget, and combinations that make no sense (a LIMIT without
        a price, a quote budget on a sell or with a qty, unknown constants);
        the book is unchanged then.  Precondition: prices and quantities are
        ints (the engine quantizes at its boundary).  The fast path checks
        their values, not their types, to keep the common case cheap.
        """
        # Fast path: LIMIT GTC/IOC and MARKET by qty, without self-trade
        # prevention or post-only: nearly all flow.  Everything else, and every
        # invalid combination, goes to _place_other.  The matching loop is
        # inlined below (not a call to _match): a call and a result tuple per
        # crossing order are a measurable share of its cost.
        if post_only or stp or quote_budget is not None:
            return self._place_other(order_id, user_id, side, price, qty, kind, tif, post_only, stp, quote_budget)
        if kind:
            if kind != MARKET or tif not in _TIFS:
                return self._place_other(order_id, user_id, side, price, qty, kind, tif, post_only, stp, quote_budget)
            rests = False
        elif tif:
            if tif != IOC:  # FOK needs its pre-check
                return self._place_other(order_id, user_id, side, price, qty, kind, tif, post_only, stp, quote_budget)
            rests = False
        else:
            rests = True
        orders = self._orders
        if side == BUY:
            opposite = self._keys[SELL]
        elif side == SELL:
            opposite = self._keys[BUY]
        else:
            raise ValueError(f"unknown side {side!r}")
        if price is None:
            if not kind:
                raise ValueError(f"order {order_id}: a limit order needs a price")
            if type(qty) is not int or qty <= 0:
                raise ValueError(f"order {order_id}: qty must be a positive int of lots (got {qty!r})")
            lim = _NO_LIMIT  # a market order without a protection cap takes any price
        else:
            try:  # a try costs nothing in 3.11 unless it raises
                bad = qty <= 0 or price <= 0
            except TypeError:  # not a number at all
                bad = True
            if bad:
                raise ValueError(f"order {order_id}: price and qty must be positive ints (got {price!r}, {qty!r})")
            # The limit as a key of the opposite side: acceptable makers have key >= lim.
            lim = price if side else -price

        if not opposite or opposite[-1] < lim:
            if not rests:
                if order_id in orders:
                    raise ValueError(f"order {order_id} is already on the book")
                return [(DONE, order_id, EXPIRED)]
            # Rests without matching (the most common case): _rest, inlined.
            key = -price if side else price
            o = [order_id, user_id, side, key, qty]
            if orders.setdefault(order_id, o) is not o:  # the duplicate check and the insert in one lookup
                raise ValueError(f"order {order_id} is already on the book")
            levels = self._levels[side]
            level = levels.get(key)
            if level is None:
                levels[key] = [qty, deque((o,)), 0, price]
                insort(self._keys[side], key)
            else:
                level[_TOTAL] += qty
                level[_QUEUE].append(o)
            return [(RESTED, order_id, side, price, qty)]

        if order_id in orders:
            raise ValueError(f"order {order_id} is already on the book")
        events: list[Event] = []
        olevels = self._levels[side ^ 1]
        while True:
            okey = opposite[-1]
            level = olevels[okey]
            fill_price = level[_PRICE]
            queue = level[_QUEUE]
            while True:  # the level has live quantity, so a live order is found before it runs out
                m = queue[0]
                mqty = m[_QTY]
                if not mqty:  # cancelled earlier, lazily left in place
                    queue.popleft()
                    level[_DEAD] -= 1
                    continue
                if mqty > qty:  # the taker is done inside this maker
                    m[_QTY] = mqty - qty
                    level[_TOTAL] -= qty
                    events.append((FILL, order_id, m[_ID], user_id, m[_USER], fill_price, qty, side, mqty - qty))
                    events.append((DONE, order_id, FILLED))
                    return events
                queue.popleft()
                maker_id = m[_ID]
                del orders[maker_id]
                events.append((FILL, order_id, maker_id, user_id, m[_USER], fill_price, mqty, side, 0))
                qty -= mqty
                total = level[_TOTAL] - mqty
                if not total:
                    del olevels[okey]
                    opposite.pop()
                    break
                level[_TOTAL] = total
                if not qty:
                    break
            if not qty:
                events.append((DONE, order_id, FILLED))
                return events
            if not opposite or opposite[-1] < lim:
                break
        if not rests:
            events.append((DONE, order_id, EXPIRED))
            return events
        self._rest(order_id, user_id, side, price, qty)
        events.append((RESTED, order_id, side, price, qty))
        return events

    def check_invariants(self) -> None:
        """Raise AssertionError unless the book's structures agree with each other.

        Checks: each side's keys are strictly ascending and exactly the keys
        of its levels; every level has live quantity and its total is the sum
        of its live orders; its dead-entry count is right; every live order is
        in the id index (and vice versa) with the side and key of its level;
        the book is not crossed.  O(n): for tests and debugging, not the hot path.
        """
        seen: set[int] = set()
        for side in _SIDES:
            keys = self._keys[side]
            levels = self._levels[side]
            assert all(a < b for a, b in pairwise(keys)), f"side {side}: keys not ascending"
            assert set(keys) == set(levels), f"side {side}: sorted keys and levels disagree"
            for key, level in levels.items():
                total, queue, dead, price = level
                assert price == (-key if side == SELL else key), f"side {side} key {key}: level price {price}"
                live = [o for o in queue if o[_QTY]]
                assert total > 0, f"side {side} key {key}: empty level still listed"
                assert total == sum(o[_QTY] for o in live), f"side {side} key {key}: total != sum of orders"
                assert dead == len(queue) - len(live), f"side {side} key {key}: dead count {dead} wrong"
                assert all(o[_QTY] >= 0 for o in queue), f"side {side} key {key}: negative qty"
                for o in live:
                    oid = o[_ID]
                    assert oid not in seen, f"order {oid} rests twice"
                    seen.add(oid)
                    assert self._orders.get(oid) is o, f"order {oid} missing from the id index"
                    assert o[_SIDE] == side and o[_KEY] == key, f"order {oid} filed under the wrong level"
        assert seen == set(self._orders), "id index holds orders that are not on a level"
        bid, ask = self.best_bid(), self.best_ask()
        assert bid is None or ask is None or bid < ask, f"crossed book: bid {bid} >= ask {ask}"

    # --- internals -----------------------------------------------------------------------

    def _rest(self, order_id: int, user_id: int, side: int, price: int, qty: int) -> None:
        """Append an order at the back of its price level, creating the level if needed."""
        key = -price if side == SELL else price
        o = [order_id, user_id, side, key, qty]
        self._orders[order_id] = o
        levels = self._levels[side]
        level = levels.get(key)
        if level is None:
            levels[key] = [qty, deque((o,)), 0, price]
            insort(self._keys[side], key)
        else:
            level[_TOTAL] += qty
            level[_QUEUE].append(o)

    def _place_other(
        self,
        order_id: int,
        user_id: int,
        side: int,
        price: int | None,
        qty: int | None,
        kind: int,
        tif: int,
        post_only: bool,
        stp: int,
        quote_budget: int | None,
    ) -> list[Event]:
        """The rest of ``place``: post-only, FOK, self-trade prevention, quote budget, and full validation."""
        if order_id in self._orders:
            raise ValueError(f"order {order_id} is already on the book")
        if side not in _SIDES:
            raise ValueError(f"unknown side {side!r}")
        if stp not in _STPS:
            raise ValueError(f"unknown self-trade prevention mode {stp!r}")
        if kind == LIMIT:
            if tif not in _TIFS:
                raise ValueError(f"unknown time in force {tif!r}")
            if quote_budget is not None:
                raise ValueError("a quote budget is for market buys only")
            if price is None:
                raise ValueError("a limit order needs a price")
            _check_price(price)
            _check_qty(qty)
        elif kind == MARKET:
            if tif not in _TIFS:
                raise ValueError(f"unknown time in force {tif!r}")
            if post_only:
                raise ValueError("post-only is for limit orders")
            if price is not None:
                _check_price(price)
            if quote_budget is not None:
                if side != BUY:
                    raise ValueError("a quote budget is for market buys only")
                if qty is not None:
                    raise ValueError("give a market order a qty or a quote budget, not both")
                if type(quote_budget) is not int or quote_budget <= 0:
                    raise ValueError(f"quote budget must be a positive int of ticks x lots (got {quote_budget!r})")
            else:
                _check_qty(qty)
        else:
            raise ValueError(f"unknown order kind {kind!r}")

        # The limit expressed as a key of the opposite side: acceptable makers have key >= lim.
        lim = _NO_LIMIT if price is None else (-price if side == BUY else price)
        opposite = self._keys[side ^ 1]
        crosses = bool(opposite) and opposite[-1] >= lim
        events: list[Event] = []

        if quote_budget is not None:
            status = self._match_budget(order_id, user_id, lim, quote_budget, stp, events) if crosses else EXPIRED
            events.append((DONE, order_id, status))
            return events

        if kind == LIMIT and post_only:
            if crosses:
                return [(DONE, order_id, REJECTED)]
            self._rest(order_id, user_id, side, price, qty)
            return [(RESTED, order_id, side, price, qty)]

        if kind == LIMIT and tif == FOK and not self._can_fill(side, user_id, lim, qty, stp):
            return [(DONE, order_id, EXPIRED)]

        stopped = False
        if crosses:
            qty, stopped = self._match(order_id, user_id, side, lim, qty, stp, events)
        if not qty:
            events.append((DONE, order_id, FILLED))
        elif stopped or kind == MARKET or tif != GTC:
            events.append((DONE, order_id, EXPIRED))
        else:
            self._rest(order_id, user_id, side, price, qty)
            events.append((RESTED, order_id, side, price, qty))
        return events

    def _match(
        self, taker_id: int, user_id: int, side: int, lim: int, qty: int, stp: int, events: list[Event]
    ) -> tuple[int, bool]:
        """Take liquidity from the opposite side while its best key is >= ``lim`` and ``qty`` remains.

        Appends the FILL events and STP's maker DONE events to ``events`` and returns
        ``(remaining qty, stopped by self-trade prevention)``.
        """
        opp = side ^ 1
        keys = self._keys[opp]
        levels = self._levels[opp]
        orders = self._orders
        append = events.append
        while keys:
            key = keys[-1]
            if key < lim:
                break
            level = levels[key]
            price = level[_PRICE]
            queue = level[_QUEUE]
            # The level has live quantity (empty levels are removed at once), so
            # this loop always finds a live order before the deque runs out.
            while True:
                m = queue[0]
                mqty = m[_QTY]
                if not mqty:  # cancelled earlier, lazily left in place
                    queue.popleft()
                    level[_DEAD] -= 1
                    continue
                if stp and m[_USER] == user_id:
                    if stp == STP_EXPIRE_TAKER:
                        return qty, True
                    # EXPIRE_MAKER / EXPIRE_BOTH: the maker leaves the book unfilled.
                    queue.popleft()
                    del orders[m[_ID]]
                    m[_QTY] = 0
                    append((DONE, m[_ID], EXPIRED))
                    total = level[_TOTAL] - mqty
                    if total:
                        level[_TOTAL] = total
                    else:
                        del levels[key]
                        keys.pop()
                    if stp == STP_EXPIRE_BOTH:
                        return qty, True
                    if total:
                        continue
                    break
                if mqty > qty:
                    m[_QTY] = mqty - qty
                    level[_TOTAL] -= qty
                    append((FILL, taker_id, m[_ID], user_id, m[_USER], price, qty, side, mqty - qty))
                    return 0, False
                # The maker is filled completely.
                queue.popleft()
                del orders[m[_ID]]
                m[_QTY] = 0
                append((FILL, taker_id, m[_ID], user_id, m[_USER], price, mqty, side, 0))
                qty -= mqty
                total = level[_TOTAL] - mqty
                if total:
                    level[_TOTAL] = total
                    if not qty:
                        return 0, False
                else:
                    del levels[key]
                    keys.pop()
                    if not qty:
                        return 0, False
                    break
        return qty, False

    def _match_budget(self, taker_id: int, user_id: int, lim: int, budget: int, stp: int, events: list[Event]) -> str:
        """Market buy by quote budget: at each maker buy what the budget affords; return the taker's status.

        FILLED when it stopped because the budget cannot buy one more lot at
        the next available price (or is spent exactly); EXPIRED when the book
        or the cap ran out first, self-trade prevention stopped it, or it
        filled nothing.
        """
        keys = self._keys[SELL]
        levels = self._levels[SELL]
        append = events.append
        filled = False
        while keys and budget:
            key = keys[-1]
            if key < lim:
                return EXPIRED
            price = -key
            afford = budget // price
            if not afford:
                return FILLED if filled else EXPIRED
            level = levels[key]
            queue = level[_QUEUE]
            m = queue[0]
            mqty = m[_QTY]
            if not mqty:
                queue.popleft()
                level[_DEAD] -= 1
                continue
            if stp and m[_USER] == user_id:
                if stp == STP_EXPIRE_TAKER:
                    return EXPIRED
                self._remove_head(level, key, SELL)
                append((DONE, m[_ID], EXPIRED))
                if stp == STP_EXPIRE_BOTH:
                    return EXPIRED
                continue
            take = afford if afford < mqty else mqty
            budget -= take * price
            filled = True
            append((FILL, taker_id, m[_ID], user_id, m[_USER], price, take, BUY, mqty - take))
            if take < mqty:
                m[_QTY] = mqty - take
                level[_TOTAL] -= take
            else:
                self._remove_head(level, key, SELL)
        return FILLED if filled and not budget else EXPIRED

    def _remove_head(self, level: list, key: int, side: int) -> None:
        """Remove the live order at the head of ``level`` (its whole remaining qty), and the level if now empty."""
        m = level[_QUEUE].popleft()
        del self._orders[m[_ID]]
        qty = m[_QTY]
        m[_QTY] = 0
        total = level[_TOTAL] - qty
        if total:
            level[_TOTAL] = total
        else:
            del self._levels[side][key]
            self._keys[side].pop()

    def _can_fill(self, side: int, user_id: int, lim: int, qty: int, stp: int) -> bool:
        """FOK pre-check: can ``qty`` fill completely at keys >= ``lim``, given self-trade prevention?

        Own orders that STP would remove (EXPIRE_MAKER) do not count; with
        EXPIRE_TAKER / EXPIRE_BOTH the walk stops at the first own order,
        exactly where matching would stop.
        """
        opp = side ^ 1
        keys = self._keys[opp]
        levels = self._levels[opp]
        need = qty
        for i in range(len(keys) - 1, -1, -1):
            key = keys[i]
            if key < lim:
                return False
            level = levels[key]
            if stp == STP_NONE:
                need -= level[_TOTAL]
                if need <= 0:
                    return True
                continue
            for m in level[_QUEUE]:
                mqty = m[_QTY]
                if not mqty:
                    continue
                if m[_USER] == user_id:
                    if stp == STP_EXPIRE_MAKER:
                        continue
                    return False
                need -= mqty
                if need <= 0:
                    return True
        return False


def _check_price(price: object) -> None:
    if type(price) is not int or price <= 0:
        raise ValueError(f"price must be a positive int of ticks (got {price!r})")


def _check_qty(qty: object) -> None:
    if type(qty) is not int or qty <= 0:
        raise ValueError(f"qty must be a positive int of lots (got {qty!r})")
