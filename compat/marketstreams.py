"""Binance's market streams (``btcusdt@trade``, ``@depth``, ``@ticker``...) made from ours (``trades@BTC_USDT``...).

Our publishers send one pre-serialized frame per event to a Channels group
(``marketdata.streams``); a Binance stream subscribes to the same group and
turns the frame into Binance's payload.  The translation is done once per
frame per process, not once per connection: ``FrameCache`` keeps the result
by the frame's text, so every other connection of the process receiving the
same frame only looks it up.  Payloads that need more than the frame
(``@ticker``'s best quantities and last trade, ``@bookTicker``, the partial
books ``@depth5/10/20``) read the Redis read models once per frame per
process, the same way.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from asgiref.sync import sync_to_async

from exchange_site.amounts import plain
from marketdata import selectors
from marketdata.streams import KLINE_INTERVALS

_NAME = re.compile(r"^(?P<symbol>[A-Za-z0-9]{2,32})@(?P<kind>[A-Za-z0-9_]+)(?:@(?P<rate>100ms|1000ms))?$")
_SIMPLE = {"trade": "trades", "aggTrade": "trades", "ticker": "ticker", "miniTicker": "ticker",
           "bookTicker": "depth", "depth": "depth"}  # fmt: skip
_PARTIAL = {"depth5": 5, "depth10": 10, "depth20": 20}


@dataclass(frozen=True, slots=True)
class StreamName:
    """A Binance market stream name, parsed (the symbol not yet looked up)."""

    name: str
    symbol: str  # upper case, as in REST
    kind: str  # trade, aggTrade, depth, partialDepth, ticker, miniTicker, bookTicker, kline
    source_kind: str  # our stream kind it is made from: trades, depth, ticker, kline_<interval>
    levels: int = 0
    interval_ms: int = 1000


def parse_stream_name(name: str) -> StreamName | None:
    """The parts of a Binance market stream name we serve, or None."""
    match = _NAME.match(name)
    if match is None:
        return None
    symbol, kind, rate = match["symbol"].upper(), match["kind"], match["rate"]
    if kind in _PARTIAL:
        return StreamName(name, symbol, "partialDepth", "depth", _PARTIAL[kind], 100 if rate == "100ms" else 1000)
    if rate is not None and kind != "depth":
        return None
    if kind in _SIMPLE:
        return StreamName(name, symbol, kind, _SIMPLE[kind])
    if kind.startswith("kline_") and kind[6:] in KLINE_INTERVALS:
        return StreamName(name, symbol, "kline", kind)
    return None


# --- translations that need only the frame ---------------------------------------------------


def _trade(data: dict[str, Any], symbol: str) -> dict[str, Any]:
    return {"e": "trade", "E": data["E"], "s": symbol, "t": data["t"], "p": data["p"], "q": data["q"],
            "T": data["T"], "m": data["m"], "M": True}  # fmt: skip


def _agg_trade(data: dict[str, Any], symbol: str) -> dict[str, Any]:
    return {"e": "aggTrade", "E": data["E"], "s": symbol, "a": data["t"], "p": data["p"], "q": data["q"],
            "f": data["t"], "l": data["t"], "T": data["T"], "m": data["m"], "M": True}  # fmt: skip


def _depth(data: dict[str, Any], symbol: str) -> dict[str, Any]:
    return {**data, "s": symbol}


def _mini_ticker(data: dict[str, Any], symbol: str) -> dict[str, Any]:
    return {"e": "24hrMiniTicker", "E": data["E"], "s": symbol, "c": _zero(data["c"]), "o": _zero(data["o"]),
            "h": _zero(data["h"]), "l": _zero(data["l"]), "v": data["v"], "q": data["q"]}  # fmt: skip


def _kline(data: dict[str, Any], symbol: str) -> dict[str, Any]:
    k = data["k"]
    return {
        "e": "kline", "E": data["E"], "s": symbol,
        "k": {"t": k["t"], "T": k["T"], "s": symbol, "i": k["i"], "f": -1, "L": -1, "o": k["o"], "c": k["c"],
              "h": k["h"], "l": k["l"], "v": k["v"], "n": k["n"], "x": k["x"], "q": k["q"], "V": "0", "Q": "0",
              "B": "0"},
    }  # fmt: skip


_FROM_FRAME: dict[str, Callable[[dict[str, Any], str], dict[str, Any]]] = {
    "trade": _trade,
    "aggTrade": _agg_trade,
    "depth": _depth,
    "miniTicker": _mini_ticker,
    "kline": _kline,
}


def _zero(value: str | None) -> str:
    return "0" if value is None else value


def _dumps(payload: Any) -> str:
    return json.dumps(payload, separators=(",", ":"))


# --- translations that read the read models ---------------------------------------------------


def _ticker_extras(market: str) -> tuple[dict[str, Any], dict[str, Any] | None]:
    return (
        selectors.depth_snapshots(symbols=[market], limit=1)[market],
        selectors.last_trades(symbols=[market])[market],
    )


def ticker_payload(data: dict[str, Any], symbol: str, top: dict[str, Any], last: dict[str, Any] | None) -> dict:
    """Binance's ``24hrTicker`` from our ticker frame, the top of the book and the last trade."""
    bid = top["bids"][0] if top["bids"] else ["0", "0"]
    ask = top["asks"][0] if top["asks"] else ["0", "0"]
    volume, quote_volume = Decimal(data["v"] or 0), Decimal(data["q"] or 0)
    count = data["n"] or 0
    last_id = last["id"] if last else -1
    return {
        "e": "24hrTicker", "E": data["E"], "s": symbol, "p": _zero(data["p"]), "P": _zero(data["P"]),
        "w": plain(quote_volume / volume) if volume else "0", "x": _zero(data["o"]), "c": _zero(data["c"]),
        "Q": last["qty"] if last else "0", "b": bid[0], "B": bid[1], "a": ask[0], "A": ask[1],
        "o": _zero(data["o"]), "h": _zero(data["h"]), "l": _zero(data["l"]), "v": data["v"], "q": data["q"],
        "O": data["O"], "C": data["C"], "F": last_id - count + 1 if count and last_id > 0 else -1,
        "L": last_id if count else -1, "n": count,
    }  # fmt: skip


def book_ticker_payload(top: dict[str, Any], symbol: str) -> dict[str, Any]:
    bid = top["bids"][0] if top["bids"] else ["0", "0"]
    ask = top["asks"][0] if top["asks"] else ["0", "0"]
    return {"u": top["lastUpdateId"], "s": symbol, "b": bid[0], "B": bid[1], "a": ask[0], "A": ask[1]}


class FrameCache:
    """Translations shared by every connection of this process, keyed by what they are made from.

    Bounded (least recently used out).  Async producers are awaited once per
    key: connections that ask while it runs wait for the same result.
    """

    def __init__(self, size: int = 4096) -> None:
        self.size = size
        self._done: OrderedDict[tuple, Any] = OrderedDict()
        self._running: dict[tuple, asyncio.Future] = {}

    def get(self, key: tuple, make: Callable[[], Any]) -> Any:
        found = self._done.get(key)
        if found is None:
            found = make()
            self._store(key, found)
        return found

    async def get_async(self, key: tuple, make: Callable[[], Awaitable[Any]]) -> Any:
        found = self._done.get(key)
        if found is not None:
            return found
        running = self._running.get(key)
        if running is not None:
            return await asyncio.shield(running)
        future = asyncio.get_running_loop().create_future()
        self._running[key] = future
        try:
            found = await make()
            self._store(key, found)
            future.set_result(found)
            return found
        except BaseException as error:
            future.set_exception(error)
            future.exception()  # retrieved: nobody else may be waiting
            raise
        finally:
            del self._running[key]

    def _store(self, key: tuple, value: Any) -> None:
        self._done[key] = value
        while len(self._done) > self.size:
            self._done.popitem(last=False)

    def clear(self) -> None:
        self._done.clear()


cache = FrameCache()
_read_extras = sync_to_async(_ticker_extras, thread_sensitive=False)
_read_tops = sync_to_async(selectors.depth_snapshots, thread_sensitive=False)


def payload_text(kind: str, symbol: str, text: str) -> str:
    """Binance's payload (JSON text) of a stream made from the frame alone."""

    def make() -> str:
        return _dumps(_FROM_FRAME[kind](json.loads(text)["data"], symbol))

    return cache.get((kind, symbol, text), make)


async def ticker_text(symbol: str, market: str, text: str) -> str:
    """Binance's ``24hrTicker`` (JSON text) for one of our ticker frames."""

    async def make() -> str:
        top, last = await _read_extras(market)
        return _dumps(ticker_payload(json.loads(text)["data"], symbol, top, last))

    return await cache.get_async(("ticker", symbol, text), make)


async def current_book(market: str, levels: int) -> dict[str, Any]:
    """The best ``levels`` of ``market``'s book as the read model holds it now (not shared: no frame to key it by)."""
    return (await _read_tops(symbols=[market], limit=levels))[market]


async def book_top(market: str, update_id: int, levels: int) -> dict[str, Any]:
    """The best ``levels`` of ``market``'s book as committed at (or after) depth update ``update_id``."""

    async def make() -> dict[str, Any]:
        return (await _read_tops(symbols=[market], limit=levels))[market]

    return await cache.get_async(("book", market, update_id, levels), make)


def depth_update_id(text: str) -> int:
    """The last update id of one of our depth frames (parsed once per frame per process)."""
    return cache.get(("depth-u", text), lambda: json.loads(text)["data"]["u"])
