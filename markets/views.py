"""Pages of the markets: the overview with live tickers, and the trading page of one market."""

from __future__ import annotations

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render

from accounts.selectors import balances_of_assets
from exchange_site.amounts import plain
from exchange_site.errors import ApplicationError
from marketdata import selectors as marketdata
from marketdata.streams import KLINE_INTERVALS
from markets.models import Market
from markets.selectors import market_get, market_list
from orders.forms import OrderForm
from orders.selectors import fills_for_user, order_history_for_user, orders_open_for_user

RECENT_ROWS = 20
BOOK_ROWS = 12
TRADE_ROWS = 40


def overview(request: HttpRequest) -> HttpResponse:
    markets = list(market_list())
    symbols = [market.symbol for market in markets]
    published = {row["market"]: row for row in marketdata.tickers(symbols=symbols)}
    rows = [(market, published.get(market.symbol)) for market in markets]
    config = {"symbols": symbols, "ws_url": settings.EXCHANGE["WS_URL"]}
    return render(request, "markets/overview.html", {"rows": rows, "page_config": config})


def market_or_404(symbol: str) -> Market:
    try:
        return market_get(symbol=symbol)
    except ApplicationError as error:
        raise Http404(error.message) from None


def trade(request: HttpRequest, symbol: str) -> HttpResponse:
    return render_trade_page(request, market_or_404(symbol))


def render_trade_page(
    request: HttpRequest,
    market: Market,
    *,
    form: OrderForm | None = None,
    refusal: ApplicationError | None = None,
    status: int = 200,
) -> HttpResponse:
    """The trading page; the order view re-renders it with a refused form and the service's error."""
    context: dict[str, object] = {
        "market": market,
        "markets": market_list(),
        "form": form or OrderForm(),
        "refusal": refusal,
        "intervals": KLINE_INTERVALS,
        "page_config": _page_config(request, market),
        # What the engine last published, so the page shows the market without JavaScript too.
        "ticker": next(iter(marketdata.tickers(symbols=[market.symbol])), None),
        "depth": _depth_rows(market),
        "market_trades": marketdata.recent_trades(symbol=market.symbol, limit=TRADE_ROWS)[::-1],
    }
    user = request.user
    if user.is_authenticated:
        context |= {
            "balances": balances_of_assets(user=user, assets=[market.base, market.quote]),
            "open_orders": orders_open_for_user(user=user, market=market)[:100],
            "recent_orders": order_history_for_user(user=user, market=market).order_by("-id")[:RECENT_ROWS],
            "fills": fills_for_user(user=user, market=market)[:RECENT_ROWS],
        }
    return render(request, "markets/trade.html", context, status=status)


def _page_config(request: HttpRequest, market: Market) -> dict[str, object]:
    """What the page's scripts need to know of the market (its filters mirror the server's checks)."""
    return {
        "symbol": market.symbol,
        "base": market.base.symbol,
        "quote": market.quote.symbol,
        "base_precision": market.base.precision,
        "quote_precision": market.quote.precision,
        "status": market.status,
        "tick_size": plain(market.tick_size),
        "lot_size": plain(market.lot_size),
        "min_notional": plain(market.min_notional),
        "max_quantity": plain(market.max_quantity),
        "maker_fee_rate": plain(market.maker_fee_rate),
        "taker_fee_rate": plain(market.taker_fee_rate),
        "intervals": list(KLINE_INTERVALS),
        "authenticated": request.user.is_authenticated,
        "ws_url": settings.EXCHANGE["WS_URL"],
    }


def _depth_rows(market: Market) -> dict[str, list[tuple[str, str]]]:
    """The best levels of each side; asks worst first, so the best ask sits above the spread."""
    snapshot = marketdata.depth_snapshot(symbol=market.symbol, limit=BOOK_ROWS)
    return {"asks": snapshot["asks"][::-1], "bids": snapshot["bids"]}
