"""Order pages without JavaScript: the order form, cancels, history and fills; nobody touches another's orders.

Market BTC_USDT: tick 0.01, lot 0.001, min notional 1; alice and bob hold 10 BTC and 100000 USDT.
"""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.test import Client

from accounts.models import Balance
from exchange_site.redis import get_redis
from marketdata.broadcast import publish_reference_prices
from markets.services import market_set_status
from orders.models import Order
from orders.services import OrderRequest, place_order
from orders.streams import stream_key

pytestmark = pytest.mark.django_db

D = Decimal


def logged_in(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def limit(side: str, price: str, quantity: str) -> OrderRequest:
    return OrderRequest(side=side, type=Order.Type.LIMIT, price=D(price), quantity=D(quantity))


def form(**fields: str) -> dict[str, str]:
    return {"side": "buy", "type": "limit", "time_in_force": "gtc", "price": "100", "quantity": "0.5", **fields}


def test_the_order_form_places_an_order_and_says_so(market, alice, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = logged_in(alice).post("/orders/place/BTC_USDT/", form(), follow=True)
    order = Order.objects.get(user=alice)
    assert (order.side, order.type, order.price, order.quantity, order.status) == (
        "buy",
        "limit",
        D(100),
        D("0.5"),
        "pending",
    )
    assert response.redirect_chain == [("/markets/BTC_USDT/", 302)]
    assert f"Order {order.pk} accepted: buy 0.5 BTC at 100 USDT (limit, gtc)." in response.content.decode()
    assert Balance.objects.get(user=alice, asset=market.quote).locked == D(50)
    assert get_redis().xlen(stream_key("BTC_USDT")) == 1  # handed to the engine


@pytest.mark.parametrize(
    ("fields", "status", "message", "code"),
    [
        ({"price": "100.005"}, 400, "Price 100.005 is not a multiple of the tick size 0.01.", "price_not_on_tick"),
        (
            {"quantity": "0.0005"},
            400,
            "Quantity 0.0005 is not a multiple of the lot size 0.001.",
            "quantity_not_on_lot",
        ),
        (
            {"price": "1", "quantity": "0.5"},
            400,
            "Order value 0.5 USDT is below this market&#x27;s minimum of 1 USDT.",
            "below_min_notional",
        ),
        (
            {"price": "100000", "quantity": "2"},
            400,
            "Insufficient USDT: this order needs 200000 USDT available.",
            "insufficient_funds",
        ),
        (
            {"type": "limit_maker", "time_in_force": "ioc"},
            400,
            "A limit maker (post-only) order rests on the book: its time in force must be GTC.",
            "invalid_time_in_force",
        ),
    ],
)
def test_a_refused_order_shows_the_services_error_verbatim_and_writes_nothing(
    market, alice, fields, status, message, code
):
    response = logged_in(alice).post("/orders/place/BTC_USDT/", form(**fields))
    assert response.status_code == status
    text = response.content.decode()
    assert message in text and f"<code>{code}</code>" in text
    assert not Order.objects.filter(user=alice).exists()
    assert response.context["form"]["price"].value() == form(**fields)["price"]  # the form keeps what was typed


def test_a_halted_market_refuses_the_form_with_the_services_error(market, alice):
    market_set_status(market=market, status="halted")
    response = logged_in(alice).post("/orders/place/BTC_USDT/", form())
    assert response.status_code == 409
    assert (
        "Market BTC_USDT is halted: it accepts no new orders until an operator resumes it." in response.content.decode()
    )


def test_a_malformed_form_is_refused_before_the_service(market, alice):
    response = logged_in(alice).post("/orders/place/BTC_USDT/", form(price="abc", side="up"))
    assert response.status_code == 400
    assert response.context["form"].errors.keys() == {"price", "side"}
    assert not Order.objects.exists()


def test_a_market_order_from_the_form_ignores_the_limit_boxes(market, alice):
    publish_reference_prices(symbol="BTC_USDT", best_bid=None, best_ask=D("100"), last=None)
    response = logged_in(alice).post(
        "/orders/place/BTC_USDT/",
        form(type="market", price="99", quantity="", quote_quantity="50", time_in_force="fok"),
    )
    assert response.status_code == 302
    order = Order.objects.get(user=alice)
    assert (order.type, order.price, order.quote_quantity, order.time_in_force) == ("market", None, D(50), "ioc")


def test_placing_needs_a_login(market):
    response = Client().post("/orders/place/BTC_USDT/", form())
    assert response.status_code == 302 and response["Location"].startswith("/login/")
    assert not Order.objects.exists()


def test_cancelling_own_order(market, alice):
    order = place_order(user=alice, market=market, request=limit("buy", "100", "1"))
    response = logged_in(alice).post(f"/orders/{order.pk}/cancel/", {"next": "/orders/"}, follow=True)
    assert response.redirect_chain == [("/orders/", 302)]
    order.refresh_from_db()
    assert order.cancel_requested_at is not None
    assert f"Cancel of order {order.pk} requested." in response.content.decode()


def test_cancelling_someone_elses_order_does_nothing_and_says_so(
    market, alice, bob, django_capture_on_commit_callbacks
):
    order = place_order(user=bob, market=market, request=limit("sell", "150", "1"))
    with django_capture_on_commit_callbacks() as sent:
        response = logged_in(alice).post(f"/orders/{order.pk}/cancel/", follow=True)
    order.refresh_from_db()
    assert order.cancel_requested_at is None
    assert sent == []  # nothing was streamed to the engine
    assert f"Order {order.pk} was not cancelled: You have no such order. (order_not_found)" in response.content.decode()


def test_cancel_redirects_only_to_this_site(market, alice):
    order = place_order(user=alice, market=market, request=limit("buy", "100", "1"))
    response = logged_in(alice).post(f"/orders/{order.pk}/cancel/", {"next": "https://evil.example/"})
    assert response["Location"] == "/markets/BTC_USDT/"


def test_cancel_all_cancels_own_live_orders_in_the_market_only(market, alice, bob):
    mine = [place_order(user=alice, market=market, request=limit("buy", p, "1")) for p in ("90", "91")]
    theirs = place_order(user=bob, market=market, request=limit("buy", "92", "1"))
    response = logged_in(alice).post("/orders/cancel-all/", {"market": "BTC_USDT"}, follow=True)
    assert "Cancel requested for 2 open order(s) in BTC_USDT." in response.content.decode()
    assert all(Order.objects.get(pk=o.pk).cancel_requested_at for o in mine)
    assert Order.objects.get(pk=theirs.pk).cancel_requested_at is None
    again = logged_in(bob).post("/orders/cancel-all/", {"market": "BTC_USDT"}, follow=True)
    assert "Cancel requested for 1 open order(s)" in again.content.decode()


def test_order_history_lists_own_orders_with_filters(market, alice, bob):
    kept = place_order(user=alice, market=market, request=limit("buy", "100", "1"))
    cancelled = place_order(user=alice, market=market, request=limit("buy", "101", "1"))
    Order.objects.filter(pk=cancelled.pk).update(status="cancelled")
    theirs = place_order(user=bob, market=market, request=limit("sell", "333", "1"))
    client = logged_in(alice)
    page = client.get("/orders/")
    assert page.status_code == 200
    ids = [order.pk for order in page.context["page"]]
    assert ids == [cancelled.pk, kept.pk] and theirs.pk not in ids
    assert [o.pk for o in client.get("/orders/?status=cancelled").context["page"]] == [cancelled.pk]
    assert [o.pk for o in client.get("/orders/?market=BTC_USDT&status=pending").context["page"]] == [kept.pk]


def test_fills_show_own_side_role_and_fee(market, alice, bob, engine):
    place_order(user=alice, market=market, request=limit("sell", "100", "0.5"))
    engine.drain()
    place_order(user=bob, market=market, request=limit("buy", "100", "0.5"))
    engine.drain()
    alice_fills = logged_in(alice).get("/orders/fills/")
    assert alice_fills.status_code == 200
    (fill,) = alice_fills.context["page"]
    assert (fill.my_side, fill.my_fee, fill.taker_side) == ("sell", D("0.05"), "buy")  # maker: 0.1% of 50 USDT
    text = alice_fills.content.decode()
    assert "maker" in text and "0.05 USDT" in text
    (bob_fill,) = logged_in(bob).get("/orders/fills/").context["page"]
    assert (bob_fill.my_side, bob_fill.my_fee) == ("buy", D("0.001"))  # taker: 0.2% of 0.5 BTC
    carol = Client()
    carol.force_login(type(alice).objects.create_user("carol", password="pass"))
    assert list(carol.get("/orders/fills/").context["page"]) == []


@pytest.mark.parametrize("path", ["/orders/", "/orders/fills/"])
def test_order_pages_need_a_login(db, path):
    response = Client().get(path)
    assert response.status_code == 302 and response["Location"] == f"/login/?next={path}"
