"""Binance stream names, and translations shared by every connection of a process."""

from __future__ import annotations

import asyncio
import json

import pytest

from compat.marketstreams import FrameCache, StreamName, parse_stream_name, payload_text
from marketdata.streams import frame


@pytest.mark.parametrize(
    ("name", "parsed"),
    [
        ("btcusdt@trade", StreamName("btcusdt@trade", "BTCUSDT", "trade", "trades")),
        ("btcusdt@aggTrade", StreamName("btcusdt@aggTrade", "BTCUSDT", "aggTrade", "trades")),
        ("btcusdt@depth", StreamName("btcusdt@depth", "BTCUSDT", "depth", "depth")),
        ("btcusdt@depth@100ms", StreamName("btcusdt@depth@100ms", "BTCUSDT", "depth", "depth")),
        ("btcusdt@depth5", StreamName("btcusdt@depth5", "BTCUSDT", "partialDepth", "depth", 5, 1000)),
        ("btcusdt@depth20@100ms", StreamName("btcusdt@depth20@100ms", "BTCUSDT", "partialDepth", "depth", 20, 100)),
        ("btcusdt@ticker", StreamName("btcusdt@ticker", "BTCUSDT", "ticker", "ticker")),
        ("btcusdt@miniTicker", StreamName("btcusdt@miniTicker", "BTCUSDT", "miniTicker", "ticker")),
        ("btcusdt@bookTicker", StreamName("btcusdt@bookTicker", "BTCUSDT", "bookTicker", "depth")),
        ("btcusdt@kline_1h", StreamName("btcusdt@kline_1h", "BTCUSDT", "kline", "kline_1h")),
        ("btcusdt@kline_3m", None),  # not an interval we aggregate
        ("btcusdt@trade@100ms", None),
        ("btcusdt@depth7", None),
        ("!ticker@arr", None),
        ("0", None),
        ("btc_usdt@trade", None),
    ],
)
def test_stream_names(name, parsed):
    assert parse_stream_name(name) == parsed


def test_a_frame_is_translated_once_for_every_connection():
    text = frame("trades@BTC_USDT", {"e": "trade", "E": 1, "s": "BTC_USDT", "t": 7, "p": "1", "q": "2", "T": 1,
                                     "m": True})  # fmt: skip
    first = payload_text("trade", "BTCUSDT", text)
    again = payload_text("trade", "BTCUSDT", "".join(text))  # an equal text received by another connection
    assert again is first
    assert json.loads(first) == {"e": "trade", "E": 1, "s": "BTCUSDT", "t": 7, "p": "1", "q": "2", "T": 1, "m": True,
                                 "M": True}  # fmt: skip


@pytest.mark.asyncio
async def test_concurrent_askers_share_one_read_and_the_cache_stays_bounded():
    cache = FrameCache(size=2)
    reads = 0

    async def read() -> str:
        nonlocal reads
        reads += 1
        await asyncio.sleep(0.01)
        return "payload"

    results = await asyncio.gather(*(cache.get_async(("k",), read) for _ in range(5)))
    assert results == ["payload"] * 5 and reads == 1
    for key in ("a", "b", "c"):
        cache.get((key,), lambda key=key: key)
    assert cache.get(("k",), lambda: "read again") == "read again"  # evicted: oldest first
