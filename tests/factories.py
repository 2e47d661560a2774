"""factory_boy factories for the models tests build on, and a funding helper that uses the real service."""

from __future__ import annotations

from decimal import Decimal

import factory

from accounts import services as money
from accounts.models import Asset, User
from markets.models import Market


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        django_get_or_create = ("username",)

    username = factory.Sequence(lambda n: f"user{n}")
    password = factory.django.Password("pass")


class AssetFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Asset
        django_get_or_create = ("symbol",)

    symbol = factory.Sequence(lambda n: f"A{n}")
    name = factory.LazyAttribute(lambda o: o.symbol.title())
    precision = 8


class MarketFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Market
        django_get_or_create = ("symbol",)

    base = factory.SubFactory(AssetFactory)
    quote = factory.SubFactory(AssetFactory)
    symbol = factory.LazyAttribute(lambda o: f"{o.base.symbol}_{o.quote.symbol}")
    tick_size = Decimal("0.01")
    lot_size = Decimal("0.001")
    min_notional = Decimal("1")
    maker_fee_rate = Decimal("0.001")
    taker_fee_rate = Decimal("0.002")


def fund(user: User, asset: Asset, amount: Decimal) -> None:
    money.deposit(user=user, asset=asset, amount=amount, note="test funding")


def place_limit(user: User, market, side: str, qty: str, price: str, **extra):
    """A limit order placed through the real service (funds held, PENDING until the engine runs)."""
    from orders import services

    request = services.OrderRequest(side=side, type="limit", quantity=Decimal(qty), price=Decimal(price), **extra)
    return services.place_order(user=user, market=market, request=request)
