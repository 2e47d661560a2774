"""The trading pages in a real browser (Debian's Chromium through Playwright) against the real stack.

daphne serves the pages, their static files and ``/ws`` on one port; the engine
matches; two traders in two browser contexts watch each other's orders trade
without reloading.  Screenshots of the trading page and the admin go to
``.data/screenshots/`` (git-ignored) for a person to look at.

Playwright never downloads a browser here: the tests launch ``/usr/bin/chromium``
(``apt-get install chromium``) and are skipped, saying so, when it is missing.
"""

from __future__ import annotations

import os
import re
from decimal import Decimal
from pathlib import Path

import pytest
from django.conf import settings
from django.test import Client

from orders.models import Order
from tests.factories import UserFactory
from tests.stack import LiveStack

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
SCREENSHOTS = Path(settings.BASE_DIR) / ".data" / "screenshots"
WAIT_MS = 10_000
JS_ERRORS: list[str] = []

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.browser,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason=f"{CHROMIUM} is not installed (apt-get install chromium)"),
    pytest.mark.skipif(
        not (Path(settings.BASE_DIR) / "node_modules" / "lightweight-charts").exists(),
        reason="node_modules/ is missing: scripts/dev.py runs npm ci",
    ),
]

sync_api = pytest.importorskip("playwright.sync_api")
expect = sync_api.expect
expect.set_options(timeout=WAIT_MS)


@pytest.fixture(scope="module")
def browser():
    # Playwright's sync API runs an event loop on this thread while it waits; the test's own
    # database calls between browser steps are plain synchronous code, so Django may allow them.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()
    os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)


def running_stack(**processes: bool):
    JS_ERRORS.clear()
    with LiveStack(web=True, engine=True, **processes) as stack:
        yield stack
    assert JS_ERRORS == [], "the pages raised JavaScript errors"


@pytest.fixture
def stack(market, alice, bob):
    yield from running_stack()


@pytest.fixture
def stack_with_candles(market, alice, bob):
    """With the Celery worker, which aggregates candles after the engine's batches and pushes kline frames."""
    yield from running_stack(celery=True)


def session_page(browser, stack: LiveStack, user, *, width: int = 1400, height: int = 1000, javascript: bool = True):
    """A browser context logged in as ``user`` (a real session cookie, as the login form would set)."""
    client = Client()
    client.force_login(user)
    context = browser.new_context(
        viewport={"width": width, "height": height}, color_scheme="dark", java_script_enabled=javascript
    )
    context.add_cookies([{"name": "sessionid", "value": client.cookies["sessionid"].value, "url": stack.url("/")}])
    context.set_default_timeout(WAIT_MS)
    page = context.new_page()
    # Raising inside Playwright's event handler would break its connection: collect, assert later.
    page.on("pageerror", lambda error: JS_ERRORS.append(f"{page.url}: {error}"))
    return page


def open_trading_page(page, stack: LiveStack) -> None:
    page.goto(stack.url("/markets/BTC_USDT/"))
    expect(page.locator("#book-status")).to_have_text("live")


def place(page, *, side: str, type_: str = "limit", price: str = "", quantity: str = "") -> None:
    page.locator(f"label.side-{side}").click()
    page.get_by_label("Order type").select_option(type_)
    if type_ != "market":
        page.get_by_label("Price (USDT)").fill(price)
    page.get_by_label("Quantity (BTC)").fill(quantity)
    page.locator("#order-submit").click()


def balance(page, asset: str, field: str = "available"):
    return page.locator(f'#balances tr[data-asset="{asset}"] [data-field="{field}"]')


def screenshot(page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def test_two_traders_trade_live_cancel_and_see_the_servers_errors(browser, stack_with_candles, alice, bob):
    stack = stack_with_candles
    maker, taker = session_page(browser, stack, alice), session_page(browser, stack, bob)
    for page in (maker, taker):
        open_trading_page(page, stack)

    # Client-side checks mirror the server's: an off-tick price is refused before anything is sent.
    place(maker, side="sell", price="100.005", quantity="0.5")
    expect(maker.locator("#order-error")).to_have_text("Price 100.005 is not a multiple of the tick size 0.01.")
    expect(maker.get_by_label("Price (USDT)")).to_have_attribute("aria-invalid", "true")
    assert not Order.objects.exists()

    # Alice rests a sell; both books show it, her funds are held, her order is open.
    place(maker, side="sell", price="100", quantity="0.5")
    expect(maker.locator("#order-notice")).to_contain_text("accepted: sell 0.5 at 100 USDT")
    resting = Order.objects.get(user=alice)
    expect(maker.locator(f'#open-orders tr[data-order-id="{resting.pk}"] .status')).to_have_text("Open")
    for page in (maker, taker):
        expect(page.locator("#asks tr").first).to_have_text("1000.50.5")
    expect(balance(maker, "BTC", "locked")).to_have_text("0.5")
    expect(taker.locator("#preview-cost")).to_have_text("—")
    screenshot(taker, "trading-page-resting-order")

    # Bob takes it from his form with a market buy; the cost preview prices it at the best ask first.
    taker.locator("label.side-buy").click()
    taker.get_by_label("Order type").select_option("market")
    taker.get_by_label("Quantity (BTC)").fill("0.5")
    expect(taker.locator("#preview-cost")).to_have_text("≈ 50 USDT")
    expect(taker.locator("#preview-fee")).to_have_text("≈ 0.001 BTC")
    taker.locator("#order-submit").click()

    # Both see the trade, the book emptied and their balances move, without reloading.
    for page in (maker, taker):
        expect(page.locator("#market-trades tr").first).to_contain_text("1000.5")
        expect(page.locator("#asks tr")).to_have_count(0)
        expect(page.locator("#spread")).to_have_text("The book is empty")
    expect(balance(maker, "BTC")).to_have_text("9.5")
    expect(balance(maker, "BTC", "locked")).to_have_text("0")
    expect(balance(maker, "USDT")).to_have_text("100049.95")  # 50 less the 0.1% maker fee
    expect(balance(taker, "BTC")).to_have_text("10.499")  # 0.5 less the 0.2% taker fee
    expect(balance(taker, "USDT")).to_have_text("99950")
    expect(balance(taker, "USDT", "locked")).to_have_text("0")
    expect(maker.locator("#fills tr[data-trade-id]").first).to_contain_text("sell maker")
    expect(maker.locator("#fills tr[data-trade-id]").first).to_contain_text("0.05 USDT")
    expect(taker.locator("#fills tr[data-trade-id]").first).to_contain_text("buy taker")
    expect(maker.locator(f'#order-history tr[data-order-id="{resting.pk}"] .status')).to_have_text("Filled")
    expect(maker.locator(f'#open-orders tr[data-order-id="{resting.pk}"]')).to_have_count(0)
    expect(maker.locator('[data-field="c"]')).to_have_text("100")  # the ticker's last price
    candle = "latest {} candle open 100, high 100, low 100, close 100"
    for page in (maker, taker):  # a live kline frame, drawn on the chart and named in its label
        expect(page.locator("#chart")).to_have_attribute("aria-label", re.compile(candle.format("1m")))
    taker.get_by_role("button", name="5m", exact=True).click()  # the interval switcher: history from REST
    expect(taker.get_by_role("button", name="5m", exact=True)).to_have_attribute("aria-pressed", "true")
    expect(taker.locator("#chart")).to_have_attribute("aria-label", re.compile(candle.format("5m")))
    screenshot(maker, "trading-page")

    # Cancel from the open-orders table: the order ends and its funds come back.
    place(maker, side="buy", price="90", quantity="0.1")
    bid = maker.locator("#open-orders tr[data-order-id]").first
    expect(bid.locator(".status")).to_have_text("Open")
    expect(balance(maker, "USDT", "locked")).to_have_text("9")
    expect(taker.locator("#bids tr").first).to_have_text("900.10.1")
    bid.get_by_role("button", name="Cancel").click()
    expect(maker.locator("#open-orders tr[data-order-id]")).to_have_count(0)
    expect(balance(maker, "USDT", "locked")).to_have_text("0")
    expect(taker.locator("#bids tr")).to_have_count(0)
    assert Order.objects.filter(user=alice, side="buy").get().status == Order.Status.CANCELLED

    # A bad order the page cannot judge (Bob holds 10.499 BTC) shows the server's refusal word for word.
    place(taker, side="sell", price="100", quantity="50")
    expect(taker.locator("#order-error")).to_have_text(
        "Insufficient BTC: this order needs 50 BTC available. insufficient_funds"
    )
    assert not Order.objects.filter(user=bob, side="sell").exists()

    # A phone-width view of the same page, for the record.
    phone = session_page(browser, stack, alice, width=390, height=844)
    open_trading_page(phone, stack)
    expect(phone.locator("#order-submit")).to_be_visible()
    screenshot(phone, "trading-page-phone")
    for page in (maker, taker, phone):
        page.context.close()


def test_the_admin_in_a_browser(browser, stack, alice, btc):
    operator = UserFactory(username="operator", is_staff=True, is_superuser=True)
    page = session_page(browser, stack, operator)
    page.goto(stack.url(f"/admin/accounts/user/{alice.pk}/change/"))
    page.get_by_role("link", name="Deposit").click()
    page.get_by_label("Asset").select_option(label="BTC")
    page.get_by_label("Amount").fill("0.75")
    page.get_by_label("Note").fill("browser test")
    page.get_by_role("button", name="Deposit").click()
    expect(page.locator(".messagelist")).to_contain_text("Deposited 0.75 BTC to alice.")
    assert alice.balances.get(asset=btc).available == Decimal("10.75")
    screenshot(page, "admin-user")
    page.goto(stack.url("/admin/matching/enginestate/"))
    expect(page.locator('#engine-health tr[data-market="BTC_USDT"]')).to_be_visible()
    screenshot(page, "admin-engine-health")
    page.goto(stack.url("/"))
    expect(page.get_by_role("link", name="Admin")).to_be_visible()
    expect(page.locator('tr[data-symbol="BTC_USDT"]')).to_be_visible()
    screenshot(page, "markets-overview")
    page.context.close()


def test_without_javascript_forms_post_and_the_page_re_renders(browser, stack, alice):
    page = session_page(browser, stack, alice, javascript=False)
    page.goto(stack.url("/markets/BTC_USDT/"))
    place(page, side="buy", price="90", quantity="0.0005")
    expect(page.locator("#order-error")).to_have_text(
        "Quantity 0.0005 is not a multiple of the lot size 0.001. quantity_not_on_lot"
    )
    expect(page.get_by_label("Quantity (BTC)")).to_have_value("0.0005")  # what was typed is kept
    place(page, side="buy", price="90", quantity="0.1")
    order = Order.objects.get(user=alice)
    expect(page.locator(".message.success")).to_have_text(
        f"Order {order.pk} accepted: buy 0.1 BTC at 90 USDT (limit, gtc)."
    )
    page.locator(f'#open-orders tr[data-order-id="{order.pk}"]').get_by_role("button", name="Cancel").click()
    expect(page.locator(".message.success")).to_have_text(f"Cancel of order {order.pk} requested.")
    page.goto(stack.url("/orders/"))
    expect(page.locator(f'tr[data-order-id="{order.pk}"] .status')).to_contain_text("Cancelled")
    page.context.close()
