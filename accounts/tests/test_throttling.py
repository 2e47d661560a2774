"""Rate limits that hold under concurrency: logins per username and per address, lockout, orders per user.

Real Redis, real PostgreSQL, 200 threads released by one barrier.  The test
settings' rates are huge (so other suites never trip them); each test here sets
the low limit it checks.  Fixed windows: should a run straddle a window's end,
the bound is the limit per window spanned, which the assertions allow for.
"""

from __future__ import annotations

import time
from collections import Counter

import pytest
from django.test import Client
from rest_framework.settings import api_settings
from rest_framework.test import APIClient

from orders.models import Order
from tests import figures
from tests.factories import UserFactory
from tests.invariants import assert_exchange_invariants
from tests.threads import run_at_once

pytestmark = pytest.mark.django_db(transaction=True)
PASSWORD = "a-long-enough-password-1"
ATTEMPTS = 200
LIMIT = 10
HOUR = 3600


def windows_spanned(start: float, period: int) -> int:
    return int(time.time() // period) - int(start // period) + 1


def user_with_password(username: str):
    user = UserFactory(username=username)
    user.set_password(PASSWORD)
    user.save()
    return user


def login(username: str, password: str = PASSWORD, **extra):
    return Client(**extra).post("/login/", {"username": username, "password": password})


def test_200_concurrent_logins_against_a_limit_of_10_per_username(db, settings):
    user_with_password("carol")
    # The lockout also bounds password checks in flight (to 5); set it aside to measure the rate alone.
    settings.EXCHANGE = {
        **settings.EXCHANGE,
        "LOGIN_RATE_PER_USERNAME": f"{LIMIT}/hour",
        "LOGIN_LOCKOUT_FAILURES": 1000,
    }
    start = time.time()
    responses = run_at_once(ATTEMPTS, lambda i: login("carol"))
    outcomes = Counter(r.status_code for r in responses)
    windows = windows_spanned(start, HOUR)
    assert outcomes[302] <= LIMIT * windows
    if windows == 1:
        assert outcomes == {302: LIMIT, 429: ATTEMPTS - LIMIT}
    refused = next(r for r in responses if r.status_code == 429)
    assert int(refused["Retry-After"]) > 0 and b"login_throttled" in refused.content
    figures.report(
        "login_throttle_per_username",
        {"threads": ATTEMPTS, "limit": LIMIT, "accepted": outcomes[302], "refused_429": outcomes[429]},
    )


def test_200_concurrent_logins_from_one_address_against_a_limit_of_10(db, settings):
    user_with_password("dave")
    settings.EXCHANGE = {**settings.EXCHANGE, "LOGIN_RATE_PER_IP": f"{LIMIT}/hour"}
    start = time.time()
    # Different usernames from one address; dave's is the right password, the others are not even users.
    responses = run_at_once(
        ATTEMPTS, lambda i: login("dave" if i % 20 == 0 else f"user{i}", REMOTE_ADDR="198.51.100.7")
    )
    outcomes = Counter(r.status_code for r in responses)
    passed = outcomes[302] + outcomes[200]  # 200: the login form again, wrong password
    assert passed <= LIMIT * windows_spanned(start, HOUR)
    assert outcomes[429] >= ATTEMPTS - LIMIT * windows_spanned(start, HOUR)
    # Another address is not held back by this one.
    assert login("dave", REMOTE_ADDR="198.51.100.8").status_code == 302
    figures.report(
        "login_throttle_per_address",
        {"threads": ATTEMPTS, "limit": LIMIT, "password_checked": passed, "refused_429": outcomes[429]},
    )


def test_lockout_after_5_failures_then_login_again_after_the_lock(db, settings):
    user_with_password("erin")
    settings.EXCHANGE = {**settings.EXCHANGE, "LOGIN_LOCKOUT_FAILURES": 5, "LOGIN_LOCKOUT_SECONDS": 2}
    for _ in range(5):
        assert login("erin", "wrong").status_code == 200
    locked = login("erin")  # the right password, but locked
    assert locked.status_code == 429
    body = locked.content.decode()
    assert "login_locked" in body and "locked until" in body and "UTC" in body
    assert 1 <= int(locked["Retry-After"]) <= 2
    assert login("ERIN ").status_code == 429  # the same account however it is typed
    time.sleep(2.1)
    assert login("erin").status_code == 302


def test_50_concurrent_wrong_passwords_lock_the_account(db, settings):
    # 50, not 200: with no rate limit in the way every attempt checks the password, i.e. holds a
    # PostgreSQL connection, and the test server allows 100.
    user_with_password("frank")
    settings.EXCHANGE = {**settings.EXCHANGE, "LOGIN_LOCKOUT_FAILURES": 5}
    responses = run_at_once(50, lambda i: login("frank", "wrong"))
    outcomes = Counter(r.status_code for r in responses)
    # Attempts are counted before the password is checked: five checks at most, however many race.
    assert outcomes == {200: 5, 429: 45}
    assert login("frank").status_code == 429
    figures.report(
        "login_lockout_concurrent",
        {"threads": 50, "lockout_after": 5, "password_checked": outcomes[200], "locked_429": outcomes[429]},
    )


def test_200_concurrent_orders_against_a_per_user_limit_of_10(market, alice, settings):
    settings.REST_FRAMEWORK = {
        **api_settings.user_settings,
        "DEFAULT_THROTTLE_RATES": {**api_settings.DEFAULT_THROTTLE_RATES, "orders": f"{LIMIT}/hour"},
    }
    order = {"market": "BTC_USDT", "side": "buy", "type": "limit", "price": "100", "quantity": "0.01"}

    def place(index: int):
        client = APIClient()
        client.force_authenticate(alice)
        return client.post("/api/v1/orders", {**order, "client_order_id": f"t{index}"}, format="json")

    start = time.time()
    responses = run_at_once(ATTEMPTS, place)
    outcomes = Counter(r.status_code for r in responses)
    windows = windows_spanned(start, HOUR)
    assert outcomes[201] <= LIMIT * windows
    if windows == 1:
        assert outcomes == {201: LIMIT, 429: ATTEMPTS - LIMIT}
    for refused in (r for r in responses if r.status_code == 429):
        assert int(refused["Retry-After"]) > 0
        body = refused.json()
        assert set(body) == {"code", "message", "details"} and body["code"] == "throttled"
    assert Order.objects.filter(user=alice).count() == outcomes[201]
    # Reading is not placing: the order history still answers.
    client = APIClient()
    client.force_authenticate(alice)
    assert client.get("/api/v1/orders").status_code == 200
    assert_exchange_invariants()
    figures.report(
        "order_throttle_per_user",
        {"threads": ATTEMPTS, "limit": LIMIT, "accepted": outcomes[201], "refused_429": outcomes[429]},
    )


def test_a_refused_login_never_checks_the_password(db, settings):
    """Otherwise the refusal page would tell a throttled guesser whether the guess was right."""
    from django.db import connection as db_connection
    from django.test.utils import CaptureQueriesContext

    user_with_password("gina")
    settings.EXCHANGE = {**settings.EXCHANGE, "LOGIN_RATE_PER_USERNAME": "0/hour"}
    with CaptureQueriesContext(db_connection) as queries:
        right, wrong = login("gina"), login("gina", "wrong")
    assert right.status_code == wrong.status_code == 429
    assert not [q for q in queries.captured_queries if "accounts_user" in q["sql"]]
    assert b"correct username and password" not in right.content + wrong.content


def test_the_order_limit_is_shared_by_the_trade_page_and_the_binance_api(market, alice, settings):
    from accounts import services
    from compat.tests.binance import BinanceClient

    settings.REST_FRAMEWORK = {
        **api_settings.user_settings,
        "DEFAULT_THROTTLE_RATES": {**api_settings.DEFAULT_THROTTLE_RATES, "orders": "2/hour"},
    }
    start = time.time()
    page = Client()
    page.force_login(alice)
    form = {"side": "buy", "type": "limit", "time_in_force": "gtc", "price": "100", "quantity": "0.5"}
    assert page.post("/orders/place/BTC_USDT/", form).status_code == 302
    api = APIClient()
    api.force_authenticate(alice)
    order = {"market": "BTC_USDT", "side": "buy", "type": "limit", "price": "100", "quantity": "0.5"}
    assert api.post("/api/v1/orders", order, format="json").status_code == 201
    if windows_spanned(start, HOUR) > 1:
        pytest.skip("the hour turned during the test")
    refused = page.post("/orders/place/BTC_USDT/", form)
    assert refused.status_code == 429 and int(refused["Retry-After"]) > 0 and b"throttled" in refused.content
    key, secret = services.api_key_create(user=alice)
    binance = BinanceClient(APIClient(), key=key.key, secret=secret).post(
        "/api/v3/order", symbol="BTCUSDT", side="BUY", type="LIMIT", timeInForce="GTC", price="100", quantity="0.5"
    )
    assert binance.status_code == 429 and binance.json()["code"] == -1003 and int(binance["Retry-After"]) > 0
    assert Order.objects.filter(user=alice).count() == 2
