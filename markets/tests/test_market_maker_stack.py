"""``run_market_maker`` against the real exchange: daphne (REST and /ws), the engine, PostgreSQL and Redis.

The bot runs as its own process with nothing but URLs and an API key.  It
must put a two-sided book on the market, trade (its occasional takes), keep
quoting through an engine restart and a web restart, and take its quotes
away when stopped; money stays conserved throughout.
"""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.db.models import Max

from accounts.services import api_key_create
from orders.models import Order, Trade
from tests.factories import UserFactory, fund
from tests.invariants import assert_exchange_invariants
from tests.stack import LiveStack

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]


def quoting_both_sides(user, market, *, after_id: int = 0) -> bool:
    """The bot has open orders on both sides that it placed after order ``after_id``."""
    sides = set(
        Order.objects.filter(user=user, market=market, status=Order.Status.OPEN, pk__gt=after_id).values_list(
            "side", flat=True
        )
    )
    return sides == {"buy", "sell"}


def newest_order_id(user) -> int:
    return Order.objects.filter(user=user).aggregate(top=Max("pk"))["top"] or 0


def test_the_market_maker_quotes_trades_and_survives_engine_and_web_restarts(market, btc, usdt):
    bot = UserFactory(username="marketmaker")
    fund(bot, btc, Decimal(100))
    fund(bot, usdt, Decimal(1_000_000))
    api_key, secret = api_key_create(user=bot, label="market-maker")
    stack = LiveStack(web=True, engine=True, commands={"maker": ["run_market_maker", "--markets", market.symbol]})
    stack.env |= {
        "MARKET_MAKER_API_URL": stack.url(""),
        "MARKET_MAKER_WS_URL": stack.ws_url("/ws"),
        "MARKET_MAKER_API_KEY": api_key.key,
        "MARKET_MAKER_API_SECRET": secret,
        "MARKET_MAKER_START_PRICES": f"{market.symbol}=100",
        "MARKET_MAKER_LEVEL_SIZE_QUOTE": "50",
        "MARKET_MAKER_TAKE_SIZE_QUOTE": "20",
        "MARKET_MAKER_TAKE_PROBABILITY": "0.3",
        "MARKET_MAKER_WALK_STEP_BPS": "10",  # re-quotes most cycles
        "MARKET_MAKER_CYCLE_S": "0.2",
        "MARKET_MAKER_BACKOFF_MAX_S": "1",
        "MARKET_MAKER_SUMMARY_S": "1",
        "LOG_LEVEL": "INFO",
    }
    with stack:
        stack.wait_until(lambda: quoting_both_sides(bot, market), timeout=30, what="a two-sided book")
        stack.wait_until(lambda: Trade.objects.filter(market=market).exists(), timeout=30, what="a trade")
        log = stack.log_path("maker")
        stack.wait_until(lambda: "websocket subscribed" in log.read_text(), timeout=15, what="the bot's WebSocket")

        before = newest_order_id(bot)
        stack.restart("engine")
        stack.wait_until(
            lambda: quoting_both_sides(bot, market, after_id=before), timeout=30, what="quotes after an engine restart"
        )

        before = newest_order_id(bot)
        stack.restart("web")
        stack.wait_http()
        stack.wait_until(
            lambda: quoting_both_sides(bot, market, after_id=before), timeout=30, what="quotes after a web restart"
        )
        stack.wait_until(
            lambda: log.read_text().count("websocket subscribed") >= 2, timeout=15, what="the WebSocket to reconnect"
        )

        assert stack.stop("maker") == 0
        live = Order.objects.filter(user=bot, status__in=Order.LIVE_STATUSES)
        stack.wait_until(lambda: not live.exists(), timeout=20, what="the bot's quotes to be cancelled on exit")

    text = log.read_text()
    assert "market maker summary" in text and "level=error" not in text and "Traceback" not in text
    assert_exchange_invariants()
