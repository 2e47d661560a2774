"""The market maker's smaller parts: backoff, local book, portfolio, configuration, request signing."""

from __future__ import annotations

import json
import random
from decimal import Decimal as D

import pytest
from django.conf import settings

from accounts.authentication import sign, signature_payload
from markets.market_maker.backoff import Backoff
from markets.market_maker.book import LocalBook
from markets.market_maker.client import ExchangeClient, Signer
from markets.market_maker.config import ConfigError, MakerConfig
from markets.market_maker.portfolio import Portfolio
from markets.market_maker.quoting import MarketFilters

# Backoff.


def test_backoff_doubles_up_to_the_cap_with_jitter_in_the_upper_half():
    backoff = Backoff(base=0.5, cap=30, rng=random.Random(3))

    delays = [backoff.next_delay() for _ in range(12)]

    ceilings = [0.5, 1, 2, 4, 8, 16, 30, 30, 30, 30, 30, 30]
    assert [backoff.ceiling(n) for n in range(12)] == ceilings
    for delay, ceiling in zip(delays, ceilings, strict=True):
        assert ceiling / 2 <= delay <= ceiling
    assert len(set(delays)) == len(delays)  # jittered: two clients do not retry in step


def test_backoff_starts_over_after_a_success():
    backoff = Backoff(base=1, cap=60, rng=random.Random(1))
    for _ in range(5):
        backoff.next_delay()

    backoff.reset()

    assert 0.5 <= backoff.next_delay() <= 1


def test_backoff_survives_a_very_long_outage():
    backoff = Backoff(base=0.5, cap=30, rng=random.Random(1))
    backoff.attempts = 10_000

    assert 15 <= backoff.next_delay() <= 30


def test_backoff_refuses_a_schedule_that_cannot_work():
    with pytest.raises(ValueError):
        Backoff(base=0, cap=1)
    with pytest.raises(ValueError):
        Backoff(base=2, cap=1)


# Local book.


def update(first, last, bids=(), asks=()):
    return {"e": "depthUpdate", "U": first, "u": last, "b": list(bids), "a": list(asks)}


SNAPSHOT = {"lastUpdateId": 10, "bids": [["99", "1"], ["98", "2"]], "asks": [["101", "1"]]}


def test_updates_before_the_snapshot_are_buffered_and_those_after_it_applied():
    book = LocalBook()
    book.on_update(update(8, 9, bids=[["97", "5"]]))  # already in the snapshot
    book.on_update(update(10, 12, bids=[["99", "0"]], asks=[["100.5", "3"]]))
    assert book.best_bid() is None  # nothing to show before a snapshot

    assert book.load_snapshot(SNAPSHOT)

    assert book.best_bid() == D(98) and book.best_ask() == D("100.5")
    assert D(97) not in book.bids and book.last_update_id == 12


def test_a_snapshot_older_than_the_first_buffered_update_is_refused():
    book = LocalBook()
    book.on_update(update(15, 16))

    assert not book.load_snapshot(SNAPSHOT)
    assert not book.synced


def test_a_gap_in_update_ids_marks_the_book_stale_until_the_next_snapshot():
    book = LocalBook()
    book.load_snapshot(SNAPSHOT)
    book.on_update(update(11, 11, asks=[["101", "0"]]))
    assert book.best_ask() is None and book.synced  # the only ask was removed

    book.on_update(update(13, 14, asks=[["102", "1"]]))  # 12 is missing

    assert not book.synced and book.best_bid() is None
    assert book.load_snapshot({"lastUpdateId": 13, "bids": [], "asks": [["101", "2"]]})
    assert book.best_ask() == D(101) and book.last_update_id == 14  # the buffered 13-14 applied on top
    assert book.asks == {D(101): D(2), D(102): D(1)}


# Portfolio.

BTC_USDT = MarketFilters("BTC_USDT", "BTC", "USDT", D("0.01"), D("0.001"), D(1), D(1000))
ETH_USDT = MarketFilters("ETH_USDT", "ETH", "USDT", D("0.01"), D("0.001"), D(1), D(1000))


def test_inventory_and_pnl_are_measured_against_the_starting_holdings():
    portfolio = Portfolio()
    portfolio.update({"BTC": D(10), "ETH": D(100), "USDT": D(1_000_000)})

    # Bought 0.5 BTC at 60,000 and sold 2 ETH at 3,010, paying 7 USDT of fees in all.
    portfolio.update({"BTC": D("10.5"), "ETH": D(98), "USDT": D(1_000_000) - D(30_000) + D(6_020) - D(7)})

    assert portfolio.position("BTC") == D("0.5") and portfolio.position("ETH") == D(-2)
    pnl = portfolio.pnl(
        markets={"BTC_USDT": BTC_USDT, "ETH_USDT": ETH_USDT}, prices={"BTC_USDT": D(60_100), "ETH_USDT": D(3_000)}
    )
    # +50 on the BTC bought below today's price, +20 on the ETH sold above it, -7 fees.
    assert pnl == {"USDT": D(63)}


def test_pnl_leaves_out_markets_without_a_price_yet():
    portfolio = Portfolio()
    portfolio.update({"BTC": D(1), "USDT": D(100)})

    assert portfolio.pnl(markets={"BTC_USDT": BTC_USDT}, prices={}) == {}


# Configuration.

VALID = dict(settings.MARKET_MAKER) | {"API_KEY": "k", "API_SECRET": "s"}


def test_the_default_settings_make_a_valid_configuration():
    config = MakerConfig.from_settings(VALID)

    assert config.ladder.levels >= 1 and config.ladder.spread_bps > 2 * config.price_tolerance_bps
    assert config.start_prices["BTC_USDT"] == D(60_000)
    assert config.api_url.startswith("http") and config.ws_url.startswith("ws")


def test_markets_from_the_command_line_win_over_the_setting():
    config = MakerConfig.from_settings(VALID | {"MARKETS": ["ETH_USDT"]}, markets=("btc_usdt", " "))

    assert config.markets == ("BTC_USDT",)


def test_credentials_come_from_the_file_unless_the_environment_gives_both(tmp_path):
    path = tmp_path / "demo_credentials.json"
    path.write_text(json.dumps({"username": "marketmaker", "key": "file-key", "secret": "file-secret"}))
    from_file = VALID | {"API_KEY": "", "API_SECRET": "", "CREDENTIALS_FILE": str(path)}

    assert MakerConfig.from_settings(from_file).api_key == "file-key"
    assert MakerConfig.from_settings(from_file | {"API_KEY": "env", "API_SECRET": "x"}).api_key == "env"
    assert MakerConfig.from_settings(VALID | {"API_KEY": ""}, credentials_file=path).api_secret == "file-secret"


def test_missing_credentials_say_how_to_get_some(tmp_path):
    with pytest.raises(ConfigError, match="seed_demo"):
        MakerConfig.from_settings(VALID | {"API_KEY": "", "CREDENTIALS_FILE": str(tmp_path / "none.json")})


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"SPREAD_BPS": "abc"}, "MARKET_MAKER_SPREAD_BPS must be a number"),
        ({"SPREAD_BPS": "0"}, "MARKET_MAKER_SPREAD_BPS must be a positive"),
        ({"LEVELS": "0"}, "MARKET_MAKER_LEVELS must be at least 1"),
        ({"TAKE_PROBABILITY": "1.5"}, "MARKET_MAKER_TAKE_PROBABILITY must be at most 1"),
        ({"PRICE_TOLERANCE_BPS": "5", "SPREAD_BPS": "10"}, "under half"),
        ({"WALK_BAND_PCT": "100"}, "under 100"),
        ({"API_URL": "127.0.0.1:8000"}, "MARKET_MAKER_API_URL must be a http or https URL"),
        ({"WS_URL": "http://127.0.0.1:8001/ws"}, "MARKET_MAKER_WS_URL must be a ws or wss URL"),
        ({"START_PRICES": {"BTC_USDT": "-1"}}, "MARKET_MAKER_START_PRICES"),
    ],
)
def test_a_bad_setting_is_refused_by_name(change, message):
    with pytest.raises(ConfigError, match=message):
        MakerConfig.from_settings(VALID | change)


# Signing.


def test_the_bots_signature_is_what_the_server_checks():
    signer = Signer("key", "secret", clock=lambda: 1_700_000_000.123)
    body = b'{"market":"BTC_USDT"}'

    headers = signer.headers("post", "/api/v1/orders?x=1", body)

    payload = signature_payload(
        timestamp=headers["X-Timestamp"],
        recv_window=headers["X-Recv-Window"],
        method="POST",
        path="/api/v1/orders?x=1",
        body=body,
    )
    assert headers["X-Signature"] == sign("secret", payload)
    assert headers["X-API-Key"] == "key" and headers["X-Timestamp"] == "1700000000123"


def test_two_requests_in_one_millisecond_get_different_timestamps_so_neither_looks_like_a_replay():
    signer = Signer("key", "secret", clock=lambda: 1_700_000_000.0)

    first, second = signer.headers("GET", "/api/v1/orders/open"), signer.headers("GET", "/api/v1/orders/open")

    assert int(second["X-Timestamp"]) == int(first["X-Timestamp"]) + 1
    assert first["X-Signature"] != second["X-Signature"]


@pytest.mark.asyncio
async def test_the_websocket_handshake_signs_a_get_of_the_socket_path_with_its_query():
    client = ExchangeClient(api_url="http://h:1", ws_url="ws://h:2/ws?x=1", key="k", secret="s", timeout=1)
    try:
        headers = client.ws_headers()
    finally:
        await client.close()

    payload = signature_payload(
        timestamp=headers["X-Timestamp"], recv_window=headers["X-Recv-Window"], method="GET", path="/ws?x=1", body=b""
    )
    assert headers["X-Signature"] == sign("s", payload)
