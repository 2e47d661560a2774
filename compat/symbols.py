"""Binance's symbols (``BTCUSDT``, ``btcusdt`` in stream names) and our markets (``BTC_USDT``).

A Binance symbol is the base asset followed by the quote asset.  Two of our
markets could in principle spell the same (``AB_CDE`` and ``ABC_DE``): such a
symbol is ambiguous and left out, so it can never reach the wrong market.
The index is read from the database once and again at most once a second
when a symbol is not found (a market added meanwhile).
"""

from __future__ import annotations

import logging
import threading
import time

from compat.errors import invalid_symbol
from markets.models import Market
from markets.selectors import market_get, market_list

logger = logging.getLogger(__name__)

REFRESH_AT_MOST_EVERY_S = 1.0


def binance_symbol(market: Market) -> str:
    return f"{market.base.symbol}{market.quote.symbol}"


class SymbolIndex:
    """Binance symbol <-> our market symbol, both ways, for this process."""

    def __init__(self) -> None:
        self._to_ours: dict[str, str] = {}
        self._to_binance: dict[str, str] = {}
        self._loaded_at = float("-inf")
        self._lock = threading.Lock()

    def ours(self, symbol: str) -> str | None:
        """Our market symbol for a Binance symbol (any case), or None."""
        key = symbol.upper()
        found = self._to_ours.get(key)
        if found is None and self._refresh():
            found = self._to_ours.get(key)
        return found

    def binance(self, market_symbol: str) -> str | None:
        """The Binance symbol of one of our markets, or None."""
        found = self._to_binance.get(market_symbol)
        if found is None and self._refresh():
            found = self._to_binance.get(market_symbol)
        return found

    def known_binance(self, market_symbol: str) -> str | None:
        """Like ``binance`` without touching the database (for async code; None when not loaded yet)."""
        return self._to_binance.get(market_symbol)

    def _refresh(self) -> bool:
        with self._lock:
            if time.monotonic() - self._loaded_at < REFRESH_AT_MOST_EVERY_S:
                return False
            spelled: dict[str, list[str]] = {}
            for market in market_list():
                spelled.setdefault(binance_symbol(market), []).append(market.symbol)
            ambiguous = {name: ours for name, ours in spelled.items() if len(ours) > 1}
            if ambiguous:
                logger.warning("markets with the same Binance symbol are not served", extra={"symbols": ambiguous})
            self._to_ours = {name: ours[0] for name, ours in spelled.items() if len(ours) == 1}
            self._to_binance = {ours: name for name, ours in self._to_ours.items()}
            self._loaded_at = time.monotonic()
            return True

    def forget(self) -> None:
        with self._lock:
            self._to_ours, self._to_binance, self._loaded_at = {}, {}, float("-inf")


index = SymbolIndex()


def market_for_symbol(symbol: str) -> Market:
    """Our market for a Binance symbol, or Binance's ``-1121 Invalid symbol.``"""
    ours = index.ours(symbol) if symbol else None
    if ours is None:
        raise invalid_symbol()
    return market_get(symbol=ours)
