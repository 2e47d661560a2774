"""The operators' admin for markets: create through the service, halt and resume, cancel every order."""

from __future__ import annotations

from decimal import Decimal

import pytest
from rest_framework.test import APIClient

from exchange_site.errors import ApplicationError
from markets.models import Market
from orders.models import Order
from orders.services import OrderRequest, place_order
from tests.factories import AssetFactory

pytestmark = pytest.mark.django_db

D = Decimal


def act(client, action: str, *markets: Market):
    return client.post(
        "/admin/markets/market/", {"action": action, "_selected_action": [m.pk for m in markets]}, follow=True
    )


def buy() -> OrderRequest:
    return OrderRequest(side="buy", type="limit", price=D(100), quantity=D(1))


def test_halting_a_market_in_the_admin_refuses_new_orders_with_a_clear_error(admin_client, market, alice):
    response = act(admin_client, "halt", market)
    assert "BTC_USDT: halted." in response.content.decode()
    market.refresh_from_db()
    assert market.status == Market.Status.HALTED

    with pytest.raises(ApplicationError) as refusal:
        place_order(user=alice, market=market, request=buy())
    assert refusal.value.code == "market_halted"
    api = APIClient()
    api.force_authenticate(alice)
    body = {"market": "BTC_USDT", "side": "buy", "type": "limit", "price": "100", "quantity": "1"}
    answer = api.post("/api/v1/orders", body, format="json")
    assert answer.status_code == 409
    assert answer.json()["code"] == "market_halted"
    assert answer.json()["message"] == (
        "Market BTC_USDT is halted: it accepts no new orders until an operator resumes it."
    )
    assert not Order.objects.exists()

    act(admin_client, "resume", market)
    market.refresh_from_db()
    assert market.status == Market.Status.TRADING
    assert api.post("/api/v1/orders", body, format="json").status_code == 201


def test_a_markets_page_is_read_only(admin_client, market):
    assert admin_client.get(f"/admin/markets/market/{market.pk}/change/").status_code == 200
    response = admin_client.post(f"/admin/markets/market/{market.pk}/change/", {"tick_size": "1"})
    assert response.status_code == 403
    assert admin_client.post(f"/admin/markets/market/{market.pk}/delete/", {"post": "yes"}).status_code == 403
    market.refresh_from_db()
    assert market.tick_size == D("0.01")


def test_the_market_list_filters_by_status(admin_client, market, usdt):
    other = Market.objects.create(
        symbol="ETH_USDT", base=AssetFactory(symbol="ETH"), quote=usdt, tick_size=D("0.01"), lot_size=D("0.001")
    )
    act(admin_client, "halt", other)
    page = admin_client.get("/admin/markets/market/?status__exact=halted")
    assert list(page.context["cl"].result_list) == [other]


def test_creating_a_market_goes_through_market_create(admin_client, btc, usdt):
    form = {"base": btc.pk, "quote": usdt.pk, "tick_size": "0.01", "lot_size": "0.0001", "min_notional": "5",
            "maker_fee_rate": "0.001", "taker_fee_rate": "0.002"}  # fmt: skip
    assert admin_client.get("/admin/markets/market/add/").status_code == 200
    response = admin_client.post("/admin/markets/market/add/", form)
    assert response.status_code == 302
    market = Market.objects.get(symbol="BTC_USDT")
    assert (market.lot_size, market.taker_fee_rate, market.status) == (D("0.0001"), D("0.002"), "trading")

    again = admin_client.post("/admin/markets/market/add/", form)
    assert "Market BTC_USDT already exists. (market_exists)" in again.content.decode()
    too_fine = admin_client.post(
        "/admin/markets/market/add/", {**form, "base": usdt.pk, "quote": btc.pk, "lot_size": "0.000000001"}
    )
    assert "Lot size 0.000000001 has more decimals than USDT (8). (invalid_market_filters)" in too_fine.content.decode()
    assert Market.objects.count() == 1


def test_cancel_all_orders_in_selected_markets(admin_client, market, alice, bob):
    orders = [place_order(user=user, market=market, request=buy()) for user in (alice, bob)]
    response = act(admin_client, "cancel_all_orders", market)
    assert "Cancel requested for 2 live order(s)" in response.content.decode()
    assert all(Order.objects.get(pk=o.pk).cancel_requested_at for o in orders)


def test_cancel_only_in_the_admin_refuses_orders_and_serves_cancels(admin_client, market, alice):
    order = place_order(user=alice, market=market, request=buy())
    response = act(admin_client, "cancel_only", market)
    assert "BTC_USDT: cancel only." in response.content.decode()
    market.refresh_from_db()
    with pytest.raises(ApplicationError) as refusal:
        place_order(user=alice, market=market, request=buy())
    assert refusal.value.code == "market_cancel_only"
    from orders.services import request_cancel

    assert request_cancel(user=alice, order_id=order.pk).cancel_requested_at is not None


def test_the_admin_creates_a_market_with_a_maximum_notional_and_refuses_inexact_filters(admin_client, btc):
    cents = AssetFactory(symbol="EUR", precision=2)
    form = {"base": btc.pk, "quote": cents.pk, "tick_size": "0.01", "lot_size": "0.1", "min_notional": "5",
            "max_notional": "", "maker_fee_rate": "0.001", "taker_fee_rate": "0.002"}  # fmt: skip
    refused = admin_client.post("/admin/markets/market/add/", form)
    assert "Tick x lot (0.001) has more decimals than EUR (2). (invalid_market_filters)" in refused.content.decode()
    assert (
        admin_client.post("/admin/markets/market/add/", {**form, "lot_size": "1", "max_notional": "10000"}).status_code
        == 302
    )
    assert Market.objects.get(symbol="BTC_EUR").max_notional == D(10000)
