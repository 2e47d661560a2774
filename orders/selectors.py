"""Reads of orders and trades, always scoped to the user asking."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from django.db.models import Case, F, Q, QuerySet, Value, When

from accounts.models import User
from exchange_site.errors import ApplicationError
from markets.models import Market
from orders.models import Order, Trade


def order_get(*, user: User, order_id: int | None = None, client_order_id: str | None = None) -> Order:
    """One of ``user``'s orders; someone else's order is reported exactly like a missing one."""
    orders = Order.objects.filter(user=user).select_related("market")
    order = (
        orders.filter(pk=order_id) if order_id is not None else orders.filter(client_order_id=client_order_id)
    ).first()
    if order is None:
        raise ApplicationError("You have no such order.", code="order_not_found", status=404)
    return order


def orders_open_for_user(*, user: User, market: Market | None = None) -> QuerySet[Order]:
    orders = Order.objects.filter(user=user, status__in=Order.LIVE_STATUSES).select_related("market")
    return (orders.filter(market=market) if market else orders).order_by("-id")


def order_history_for_user(
    *,
    user: User,
    market: Market | None = None,
    status: str | None = None,
    start: dt.datetime | None = None,
    end: dt.datetime | None = None,
    from_id: int | None = None,
    order_ids: Sequence[int] | None = None,
) -> QuerySet[Order]:
    """``user``'s orders, filtered; ``from_id``: only orders with that id or a later one; ``order_ids``: those."""
    orders = Order.objects.filter(user=user).select_related("market")
    if market:
        orders = orders.filter(market=market)
    if status:
        orders = orders.filter(status=status)
    if from_id is not None:
        orders = orders.filter(pk__gte=from_id)
    if order_ids is not None:
        orders = orders.filter(pk__in=order_ids)
    if start:
        orders = orders.filter(created_at__gte=start)
    if end:
        orders = orders.filter(created_at__lt=end)
    return orders


def trades_for_user(
    *,
    user: User,
    market: Market | None = None,
    start: dt.datetime | None = None,
    end: dt.datetime | None = None,
    order_id: int | None = None,
    from_trade_id: int | None = None,
) -> QuerySet[Trade]:
    """``user``'s trades (as buyer or seller), filtered.

    ``order_id``: the trades of that order (of ``user``'s); ``from_trade_id``:
    trades with that market trade id or a later one (give a market with it).
    """
    trades = Trade.objects.filter(Q(buyer=user) | Q(seller=user)).select_related("market")
    if market:
        trades = trades.filter(market=market)
    if start:
        trades = trades.filter(executed_at__gte=start)
    if end:
        trades = trades.filter(executed_at__lt=end)
    if order_id is not None:
        trades = trades.filter(Q(buy_order_id=order_id, buyer=user) | Q(sell_order_id=order_id, seller=user))
    if from_trade_id is not None:
        trades = trades.filter(trade_id__gte=from_trade_id)
    return trades


def market_trades(
    *,
    market: Market,
    from_trade_id: int | None = None,
    start: dt.datetime | None = None,
    end: dt.datetime | None = None,
) -> QuerySet[Trade]:
    """A market's public trade history (older than the recent trades Redis keeps), in trade id order.

    ``start`` inclusive, ``end`` exclusive, like ``trades_for_user``.
    """
    trades = Trade.objects.filter(market=market)
    if from_trade_id is not None:
        trades = trades.filter(trade_id__gte=from_trade_id)
    if start:
        trades = trades.filter(executed_at__gte=start)
    if end:
        trades = trades.filter(executed_at__lt=end)
    return trades.order_by("trade_id")


def fills_for_user(*, user: User, market: Market | None = None) -> QuerySet[Trade]:
    """``user``'s trades seen from their side, newest first.

    Each row carries ``my_side`` (buy or sell), ``my_order_id`` and ``my_fee``
    (charged on what they received: base when buying, quote when selling).
    """
    as_buyer = Q(buyer=user)
    return (
        trades_for_user(user=user, market=market)
        .select_related("market__base", "market__quote")
        .annotate(
            my_side=Case(When(as_buyer, then=Value(Order.Side.BUY.value)), default=Value(Order.Side.SELL.value)),
            my_order_id=Case(When(as_buyer, then=F("buy_order_id")), default=F("sell_order_id")),
            my_fee=Case(When(as_buyer, then=F("buyer_fee")), default=F("seller_fee")),
        )
        .order_by("-executed_at", "-id")
    )
