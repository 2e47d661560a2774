"""The markets overview (the site's home) and the trading page: content, and who sees what."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.test import Client

from orders.models import Order
from orders.services import OrderRequest, place_order
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def logged_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def limit(side: str, price: str, quantity: str) -> OrderRequest:
    return OrderRequest(side=side, type=Order.Type.LIMIT, price=Decimal(price), quantity=Decimal(quantity))


def test_home_is_the_markets_overview(market):
    page = Client().get("/")
    assert page.status_code == 200
    text = page.content.decode()
    assert 'href="/markets/BTC_USDT/"' in text and "BTC/USDT" in text
    assert 'href="/api/docs"' in text  # the API docs stay one click away
    assert 'href="/login/' in text and 'href="/admin/' not in text


def test_nav_links_the_admin_for_staff_only(market, alice):
    staff = UserFactory(username="operator", is_staff=True)
    assert 'href="/admin/"' in logged_in(staff).get("/").content.decode()
    text = logged_in(alice).get("/").content.decode()
    assert 'href="/admin/"' not in text
    assert 'href="/account/"' in text and 'action="/logout/"' in text


def test_trading_page_for_anonymous_visitors_shows_the_market_and_asks_to_log_in(market):
    page = Client().get("/markets/BTC_USDT/")
    assert page.status_code == 200
    text = page.content.decode()
    assert "BTC/USDT" in text and 'id="chart"' in text and 'id="asks"' in text and 'id="market-trades"' in text
    assert "to trade" in text and 'id="order-form"' not in text and 'id="open-orders"' not in text
    assert "lightweight-charts.standalone.production.js" in text
    assert page.context["page_config"]["tick_size"] == "0.01"


def test_trading_page_shows_own_orders_balances_and_fills_only(market, alice, bob):
    mine = place_order(user=alice, market=market, request=limit("buy", "101.5", "0.5"))
    theirs = place_order(user=bob, market=market, request=limit("sell", "222.22", "0.25"))
    page = logged_in(alice).get("/markets/btc_usdt/")
    assert page.status_code == 200
    text = page.content.decode()
    assert 'id="order-form"' in text and 'action="/orders/place/BTC_USDT/"' in text
    assert f'data-order-id="{mine.pk}"' in text and "101.5" in text
    assert f'data-order-id="{theirs.pk}"' not in text and "222.22" not in text
    # Balances of the market's two assets: 100000 - 50.75 USDT available, 50.75 locked.
    assert [(b.asset.symbol, b.available, b.locked) for b in page.context["balances"]] == [
        ("BTC", Decimal(10), Decimal(0)),
        ("USDT", Decimal("99949.25"), Decimal("50.75")),
    ]
    assert 'data-available="USDT">99949.25<' in text


def test_unknown_market_is_not_found(market):
    assert Client().get("/markets/NOPE_USDT/").status_code == 404


def test_page_assets_are_served(db):
    client = Client()
    for path in (
        "/static/css/site.css",
        "/static/js/trade.js",
        "/static/vendor/lightweight-charts/lightweight-charts.standalone.production.js",
    ):
        response = client.get(path)
        assert response.status_code == 200, path
        response.close()


def test_pages_show_the_published_market_data_without_javascript(market, alice, bob, engine):
    place_order(user=alice, market=market, request=limit("sell", "100", "0.5"))
    engine.drain()
    place_order(user=bob, market=market, request=limit("buy", "100", "0.2"))
    place_order(user=bob, market=market, request=limit("buy", "99.5", "0.1"))
    engine.drain()

    home = Client().get("/").content.decode()
    assert '<td class="num" data-field="c">100</td>' in home
    assert "0.2 BTC" in home  # 24h volume

    page = Client().get("/markets/BTC_USDT/")
    assert page.context["depth"] == {"asks": [["100", "0.3"]], "bids": [["99.5", "0.1"]]}
    assert [(t["price"], t["qty"]) for t in page.context["market_trades"]] == [("100", "0.2")]
    text = page.content.decode()
    assert "<td>100</td><td>0.3</td>" in text and "<td>99.5</td><td>0.1</td>" in text
    assert '<dd data-field="c">100</dd>' in text
