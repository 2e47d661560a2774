"""request_cancel_all_by_operator: an operator cancels every live order of a user, a market, or both."""

from __future__ import annotations

from decimal import Decimal

import pytest

from accounts.models import Balance
from exchange_site.errors import ApplicationError
from orders.models import Order
from orders.services import OrderRequest, place_order, request_cancel_all_by_operator
from tests.factories import AssetFactory, MarketFactory, fund
from tests.invariants import assert_exchange_invariants

pytestmark = pytest.mark.django_db


def limit(user, market, side: str, price: str) -> Order:
    request = OrderRequest(side=side, type=Order.Type.LIMIT, price=Decimal(price), quantity=Decimal(1))
    return place_order(user=user, market=market, request=request)


@pytest.fixture
def eth_usdt(usdt, alice, bob):
    market = MarketFactory(base=AssetFactory(symbol="ETH"), quote=usdt)
    for user in (alice, bob):
        fund(user, market.base, Decimal(10))
    return market


@pytest.fixture
def book(market, eth_usdt, alice, bob):
    return {
        ("alice", "BTC_USDT"): limit(alice, market, "buy", "90"),
        ("alice", "ETH_USDT"): limit(alice, eth_usdt, "sell", "50"),
        ("bob", "BTC_USDT"): limit(bob, market, "sell", "110"),
        ("bob", "ETH_USDT"): limit(bob, eth_usdt, "buy", "40"),
    }


def requested(book) -> set[tuple[str, str]]:
    fresh = {o.pk: o for o in Order.objects.filter(pk__in=[o.pk for o in book.values()])}
    return {key for key, order in book.items() if fresh[order.pk].cancel_requested_at is not None}


def test_all_orders_of_a_user(book, alice):
    ids = request_cancel_all_by_operator(user=alice)
    assert sorted(ids) == sorted(book[k].pk for k in [("alice", "BTC_USDT"), ("alice", "ETH_USDT")])
    assert requested(book) == {("alice", "BTC_USDT"), ("alice", "ETH_USDT")}


def test_all_orders_in_a_market(book, eth_usdt):
    request_cancel_all_by_operator(market=eth_usdt)
    assert requested(book) == {("alice", "ETH_USDT"), ("bob", "ETH_USDT")}


def test_a_user_in_a_market(book, bob, market):
    assert request_cancel_all_by_operator(user=bob, market=market) == [book[("bob", "BTC_USDT")].pk]
    assert requested(book) == {("bob", "BTC_USDT")}


def test_nothing_named_cancels_nothing(book):
    with pytest.raises(ApplicationError) as refusal:
        request_cancel_all_by_operator()
    assert refusal.value.code == "cancel_scope_missing"
    assert requested(book) == set()


def test_the_engine_cancels_them_and_releases_the_funds(market, alice, bob, usdt, engine):
    limit(alice, market, "buy", "90")
    limit(alice, market, "buy", "91")
    kept = limit(bob, market, "buy", "92")
    engine.drain()
    assert Balance.objects.get(user=alice, asset=usdt).locked == Decimal(181)
    request_cancel_all_by_operator(market=market, user=alice)
    engine.drain()
    assert set(Order.objects.filter(user=alice).values_list("status", flat=True)) == {Order.Status.CANCELLED}
    assert Order.objects.get(pk=kept.pk).status == Order.Status.OPEN
    assert Balance.objects.get(user=alice, asset=usdt).locked == 0
    assert_exchange_invariants(engine)
