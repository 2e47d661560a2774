"""Where market data leaves the engine, only after its batch committed.

Today: the reference prices (best bid, best ask, last trade) that order entry
uses for market-buy price protection.
"""

from __future__ import annotations

from decimal import Decimal

from exchange_site.redis import get_redis
from marketdata.selectors import reference_key


def publish_reference_prices(
    *, symbol: str, best_bid: Decimal | None, best_ask: Decimal | None, last: Decimal | None
) -> None:
    values = {
        "best_bid": "" if best_bid is None else str(best_bid),
        "best_ask": "" if best_ask is None else str(best_ask),
    }
    if last is not None:
        values["last"] = str(last)
    get_redis().hset(reference_key(symbol), mapping=values)
