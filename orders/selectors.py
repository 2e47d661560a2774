"""Reads of orders and trades, always scoped to the user asking."""

from __future__ import annotations

import datetime as dt

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
) -> QuerySet[Order]:
    orders = Order.objects.filter(user=user).select_related("market")
    if market:
        orders = orders.filter(market=market)
    if status:
        orders = orders.filter(status=status)
    if start:
        orders = orders.filter(created_at__gte=start)
    if end:
        orders = orders.filter(created_at__lt=end)
    return orders


def trades_for_user(
    *, user: User, market: Market | None = None, start: dt.datetime | None = None, end: dt.datetime | None = None
) -> QuerySet[Trade]:
    trades = Trade.objects.filter(Q(buyer=user) | Q(seller=user)).select_related("market")
    if market:
        trades = trades.filter(market=market)
    if start:
        trades = trades.filter(executed_at__gte=start)
    if end:
        trades = trades.filter(executed_at__lt=end)
    return trades


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
