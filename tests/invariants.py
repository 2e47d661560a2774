"""The invariants every test of money ends with (exchange-core style global checks).

* no negative balance;
* each balance equals the sum of its ledger entries, per bucket;
* per asset, all balances (users and fee account) add up to deposits minus
  withdrawals, and the whole ledger sums to zero;
* per (user, asset), locked equals what that user's live orders hold, and a
  booked limit order holds exactly its remaining quantity (times its price
  for a buy);
* per order, its locked-bucket ledger entries sum to what it still holds
  (so every release happened once: a second unlock would leave it negative),
  and its filled quantity equals the trades that name it (no trade applied twice);
* no crossed book, in the database and in the engine's memory;
* trade ids per market are 1..N without gaps;
* per (user, market), the open-order counter equals the user's live orders there;
* no balance, ledger amount, order hold, trade amount or fee is finer than its
  asset's precision (no dust: docs/decisions/010).
"""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal

from django.db import connection
from django.db.models import Count, Max, Min, Sum

from accounts.models import Balance, LedgerEntry
from accounts.selectors import external_user_id
from orders.models import OpenOrderCount, Order, Trade


def money_state() -> tuple[int, list[tuple[Decimal, Decimal]]]:
    """Ledger entries counted and every balance (available, locked): equal before and after, no money moved."""
    return LedgerEntry.objects.count(), list(Balance.objects.order_by("pk").values_list("available", "locked"))


def assert_exchange_invariants(driver=None) -> None:
    balances = list(Balance.objects.all())
    assert all(b.available >= 0 and b.locked >= 0 for b in balances), "negative balance"

    ledger = defaultdict(Decimal)
    for row in LedgerEntry.objects.values("user_id", "asset_id", "bucket").annotate(total=Sum("amount")):
        ledger[(row["user_id"], row["asset_id"], row["bucket"])] = row["total"]
    for b in balances:
        assert b.available == ledger[(b.user_id, b.asset_id, "available")], f"available != ledger for {b}"
        assert b.locked == ledger[(b.user_id, b.asset_id, "locked")], f"locked != ledger for {b}"

    external = external_user_id()
    held = defaultdict(Decimal)
    for b in balances:
        held[b.asset_id] += b.available + b.locked
    for row in LedgerEntry.objects.values("asset_id").annotate(total=Sum("amount")):
        assert row["total"] == 0, f"ledger of asset {row['asset_id']} does not sum to zero"
    for row in LedgerEntry.objects.filter(user_id=external).values("asset_id").annotate(total=Sum("amount")):
        assert held[row["asset_id"]] == -row["total"], f"asset {row['asset_id']} not conserved"

    needs = defaultdict(Decimal)
    for order in Order.objects.filter(status__in=Order.LIVE_STATUSES).select_related("market"):
        asset = order.market.quote_id if order.side == Order.Side.BUY else order.market.base_id
        needs[(order.user_id, asset)] += order.locked_amount
        if order.status != Order.Status.PENDING:
            assert order.type != Order.Type.MARKET, f"market order {order.pk} is resting"
            remaining = order.quantity - order.filled_quantity
            expected = remaining * order.price if order.side == Order.Side.BUY else remaining
            assert order.locked_amount == expected, f"order {order.pk} holds {order.locked_amount}, needs {expected}"
    assert not Order.objects.filter(status__in=Order.TERMINAL_STATUSES).exclude(locked_amount=0).exists()
    for b in balances:
        assert b.locked == needs[(b.user_id, b.asset_id)], (
            f"locked {b.locked} != open orders' {needs[(b.user_id, b.asset_id)]} for {b}"
        )

    _assert_each_order_matches_its_ledger_and_trades()

    booked = Order.objects.filter(status__in=(Order.Status.OPEN, Order.Status.PARTIALLY_FILLED))
    for row in booked.values("market_id").annotate(
        bid=Max("price", filter=_side("buy")), ask=Min("price", filter=_side("sell"))
    ):
        if row["bid"] is not None and row["ask"] is not None:
            assert row["bid"] < row["ask"], f"crossed book in market {row['market_id']}"

    for row in Trade.objects.values("market_id").annotate(n=Count("id"), top=Max("trade_id"), low=Min("trade_id")):
        assert row["low"] == 1 and row["top"] == row["n"], f"trade ids of market {row['market_id']} have gaps"

    _assert_open_order_counters()
    _assert_no_amount_finer_than_its_asset()

    if driver is not None:
        for market_engine in driver.engine.markets.values():
            market_engine.book.check_invariants()
            in_db = set(booked.filter(market=market_engine.market).values_list("pk", flat=True))
            assert set(market_engine.live) == in_db, "engine's book differs from the database's open orders"


def _side(side: str):
    from django.db.models import Q

    return Q(side=side)


def _assert_each_order_matches_its_ledger_and_trades() -> None:
    held = dict(
        LedgerEntry.objects.filter(bucket="locked", order__isnull=False)
        .values("order_id")
        .annotate(total=Sum("amount"))
        .values_list("order_id", "total")
    )
    filled = defaultdict(Decimal)
    for column in ("buy_order_id", "sell_order_id"):
        for order_id, quantity in Trade.objects.values(column).annotate(q=Sum("quantity")).values_list(column, "q"):
            filled[order_id] += quantity
    for order_id, locked, done in Order.objects.values_list("pk", "locked_amount", "filled_quantity"):
        assert held.get(order_id, 0) == locked, f"order {order_id}: ledger holds {held.get(order_id)}, row {locked}"
        assert filled[order_id] == done, f"order {order_id}: traded {filled[order_id]}, filled {done}"


def _assert_open_order_counters() -> None:
    rows = (
        Order.objects.filter(status__in=Order.LIVE_STATUSES)
        .values("user_id", "market_id")
        .annotate(n=Count("id"))
        .values_list("user_id", "market_id", "n")
    )
    live = {(user_id, market_id): n for user_id, market_id, n in rows}
    counted = {(c.user_id, c.market_id): c.count for c in OpenOrderCount.objects.all()}
    for key in live.keys() | counted.keys():
        assert counted.get(key, 0) == live.get(key, 0), (
            f"open-order counter of (user, market) {key} is {counted.get(key, 0)}, live orders {live.get(key, 0)}"
        )
        assert counted.get(key, 0) >= 0


# (table, amount column, asset id expression, join): every amount at its asset's precision.
_AMOUNTS_AND_ASSETS = [
    ("accounts_balance t", "t.available", "t.asset_id", ""),
    ("accounts_balance t", "t.locked", "t.asset_id", ""),
    ("accounts_ledgerentry t", "t.amount", "t.asset_id", ""),
    ("orders_order t", "t.locked_amount", "CASE WHEN t.side = 'buy' THEN m.quote_id ELSE m.base_id END",
     "JOIN markets_market m ON m.id = t.market_id"),
    ("orders_order t", "t.filled_quote", "m.quote_id", "JOIN markets_market m ON m.id = t.market_id"),
    ("orders_order t", "t.filled_quantity", "m.base_id", "JOIN markets_market m ON m.id = t.market_id"),
    ("orders_trade t", "t.quote_quantity", "m.quote_id", "JOIN markets_market m ON m.id = t.market_id"),
    ("orders_trade t", "t.quantity", "m.base_id", "JOIN markets_market m ON m.id = t.market_id"),
    ("orders_trade t", "t.seller_fee", "m.quote_id", "JOIN markets_market m ON m.id = t.market_id"),
    ("orders_trade t", "t.buyer_fee", "m.base_id", "JOIN markets_market m ON m.id = t.market_id"),
]  # fmt: skip


def _assert_no_amount_finer_than_its_asset() -> None:
    with connection.cursor() as cursor:
        for table, column, asset, join in _AMOUNTS_AND_ASSETS:
            cursor.execute(
                f"SELECT {column}, a.symbol, a.precision FROM {table} {join}"
                f" JOIN accounts_asset a ON a.id = {asset} WHERE {column} <> round({column}, a.precision) LIMIT 1"
            )
            row = cursor.fetchone()
            assert row is None, f"{column} {row[0]} is finer than {row[1]}'s precision {row[2]}"
