"""Trade rows written directly (no engine, no ledger): what the candle code reads, and nothing more."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from decimal import Decimal

import factory

from markets.models import Market
from orders.models import Order, Trade
from tests.factories import UserFactory


class OrderFactory(factory.django.DjangoModelFactory):
    """A filled limit order (the trades below point at one; its amounts do not matter to candles)."""

    class Meta:
        model = Order

    user = factory.SubFactory(UserFactory)
    client_order_id = factory.Sequence(lambda n: f"kline-test-{n}")
    side = Order.Side.BUY
    type = Order.Type.LIMIT
    price = Decimal(1)
    quantity = Decimal(1)
    status = Order.Status.FILLED


def make_trades(market: Market, rows: Iterable[tuple[int, dt.datetime, Decimal, Decimal]]) -> list[Trade]:
    """Insert ``(trade_id, executed_at, price, quantity)`` rows of ``market`` in one statement."""
    buy = OrderFactory(market=market, side=Order.Side.BUY, user=UserFactory(username="kline-buyer"))
    sell = OrderFactory(market=market, side=Order.Side.SELL, user=UserFactory(username="kline-seller"))
    return Trade.objects.bulk_create(
        Trade(
            market=market,
            trade_id=trade_id,
            executed_at=executed_at,
            price=price,
            quantity=quantity,
            quote_quantity=price * quantity,
            taker_side="buy",
            buy_order=buy,
            sell_order=sell,
            buyer_id=buy.user_id,
            seller_id=sell.user_id,
            buyer_fee=Decimal(0),
            seller_fee=Decimal(0),
        )
        for trade_id, executed_at, price, quantity in rows
    )
