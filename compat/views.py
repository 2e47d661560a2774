"""Binance's spot REST API (``/api/v3/``, and the ``/sapi/v1/`` calls clients make by default) over our services.

Each view parses Binance's parameters, calls our selectors and services
(the same ones ``/api/v1`` uses) and renders Binance's shapes; refusals come
out in Binance's ``{"code", "msg"}`` (``compat.errors``).  See
docs/binance-compat.md for what is supported and where we differ.
"""

from __future__ import annotations

import datetime as dt
import re
import secrets
import time
from decimal import Decimal

from django.db.models import Max
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.selectors import asset_list, balances_for_user
from compat import params, render, waiting
from compat import services as compat_services
from compat.errors import (
    ORDER_DOES_NOT_EXIST,
    UNKNOWN_ORDER,
    WOULD_TAKE,
    BinanceError,
    exception_handler,
    from_application_error,
    illegal,
    invalid_value,
    mandatory,
    not_required,
    unsupported_combination,
)
from compat.signing import BinanceApiKey, BinanceKeyScopes, BinanceSignature
from compat.symbols import binance_symbol, market_for_symbol
from exchange_site.errors import ApplicationError
from exchange_site.throttling import ThrottleOrderPlacement
from marketdata import selectors as marketdata
from marketdata.klines import EPOCH
from marketdata.streams import KLINE_INTERVALS
from markets.models import Market
from markets.selectors import market_list
from orders import selectors as orders
from orders import services
from orders.models import Order
from orders.parsing import CLIENT_ORDER_ID

DAY_MS = 86_400_000


def now_ms() -> int:
    return int(time.time() * 1000)


def to_time(ms: int | None) -> dt.datetime | None:
    return None if ms is None else EPOCH + dt.timedelta(milliseconds=ms)


class BinanceView(APIView):
    """Binance's conventions: raw parameters (query string and form body), Binance's error shape, no schema."""

    renderer_classes = (JSONRenderer,)
    parser_classes = ()
    schema = None  # not part of our OpenAPI document: Binance documents this API

    def get_exception_handler(self):
        return exception_handler

    def params(self, request: Request) -> params.Params:
        return getattr(request, "binance_params", None) or params.request_params(request)


class PublicView(BinanceView):
    authentication_classes = ()
    permission_classes = (AllowAny,)


class SignedView(BinanceView):
    """``SIGNED`` (TRADE and USER_DATA) endpoints: ``X-MBX-APIKEY`` and a ``signature`` (compat.signing)."""

    authentication_classes = (BinanceSignature,)
    permission_classes = (IsAuthenticated, BinanceKeyScopes)


class ApiKeyView(BinanceView):
    """USER_STREAM endpoints: the API key alone, as Binance has it."""

    authentication_classes = (BinanceApiKey,)
    permission_classes = (IsAuthenticated, BinanceKeyScopes)
    # A listen key only reads (the user's own events): creating or closing one needs ``read``.
    required_scopes = {"POST": "read", "PUT": "read", "DELETE": "read"}


def _limit(p: params.Params, *, default: int, maximum: int) -> int:
    """Binance's ``limit``: 1 or more; above the maximum it is cut to the maximum."""
    limit = params.integer(p, "limit", minimum=1)
    return default if limit is None else min(limit, maximum)


def _markets(p: params.Params) -> list[Market]:
    """The markets named by ``symbol`` or ``symbols``, or every market."""
    symbol = params.text(p, "symbol")
    if symbol is not None:
        if params.text(p, "symbols") is not None:
            raise BinanceError(-1128, "Combination of optional parameters invalid.")
        return [market_for_symbol(symbol)]
    symbols = params.symbol_list(p)
    if symbols is not None:
        return [market_for_symbol(name) for name in symbols]
    return list(market_list())


# --- general --------------------------------------------------------------------------------


class PingView(PublicView):
    def get(self, request: Request) -> Response:
        return Response({})


class TimeView(PublicView):
    def get(self, request: Request) -> Response:
        return Response({"serverTime": now_ms()})


class ExchangeInfoView(PublicView):
    """Every market with its status, assets, precisions, order types and filters."""

    def get(self, request: Request) -> Response:
        p = self.params(request)
        markets = _markets(p)
        permissions = params.text(p, "permissions")
        if permissions is not None and "SPOT" not in permissions.upper():
            markets = []
        return Response(
            {
                "timezone": "UTC",
                "serverTime": now_ms(),
                "rateLimits": [],
                "exchangeFilters": [],
                "symbols": [render.symbol_info(market, binance_symbol(market)) for market in markets],
            }
        )


class SystemStatusView(PublicView):
    def get(self, request: Request) -> Response:
        return Response({"status": 0, "msg": "normal"})


class NoMarginPairsView(PublicView):
    """``sapi/v1/margin/allPairs`` and ``margin/isolated/allPairs``: spot only here, so no margin pairs."""

    def get(self, request: Request) -> Response:
        return Response([])


# --- market data ----------------------------------------------------------------------------


class DepthView(PublicView):
    def get(self, request: Request) -> Response:
        p = self.params(request)
        market = market_for_symbol(params.text(p, "symbol", required=True))
        limit = _limit(p, default=100, maximum=5000)
        return Response(marketdata.depth_snapshot(symbol=market.symbol, limit=limit))


class TradesView(PublicView):
    """The latest trades, oldest first (at most the 500 the read model keeps)."""

    def get(self, request: Request) -> Response:
        p = self.params(request)
        market = market_for_symbol(params.text(p, "symbol", required=True))
        limit = _limit(p, default=500, maximum=1000)
        rows = marketdata.recent_trades(symbol=market.symbol, limit=min(limit, marketdata.TRADES_KEPT))
        return Response([render.public_trade(row) for row in rows])


class HistoricalTradesView(PublicView):
    """Older trades from the database, from ``fromId`` on (else the latest)."""

    def get(self, request: Request) -> Response:
        p = self.params(request)
        market = market_for_symbol(params.text(p, "symbol", required=True))
        limit = _limit(p, default=500, maximum=1000)
        from_id = params.integer(p, "fromId")
        trades = orders.market_trades(market=market, from_trade_id=from_id)
        rows = _page(trades, ascending=from_id is not None, limit=limit)
        return Response([render.public_trade(render.trade_row(trade)) for trade in rows])


class AggTradesView(PublicView):
    """Aggregate trades; each of our trades is its own aggregate.  Recent ones from Redis, older from the database."""

    def get(self, request: Request) -> Response:
        p = self.params(request)
        market = market_for_symbol(params.text(p, "symbol", required=True))
        limit = _limit(p, default=500, maximum=1000)
        from_id = params.integer(p, "fromId")
        start, end = params.integer(p, "startTime"), params.integer(p, "endTime")
        if start is not None and end is not None and start > end:
            raise BinanceError(-1128, "Combination of optional parameters invalid.")
        if from_id is None and start is None and end is None:
            rows = marketdata.recent_trades(symbol=market.symbol, limit=min(limit, marketdata.TRADES_KEPT))
            return Response([render.agg_trade(row) for row in rows])
        trades = orders.market_trades(
            market=market,
            from_trade_id=from_id,
            start=to_time(start),
            end=to_time(end + 1) if end is not None else None,  # Binance's endTime is inclusive
        )
        rows = _page(trades, ascending=from_id is not None or start is not None, limit=limit)
        return Response([render.agg_trade(render.trade_row(trade)) for trade in rows])


class KlinesView(PublicView):
    """Candles as Binance's arrays; buckets without trades have none (Binance shows flat ones)."""

    def get(self, request: Request) -> Response:
        p = self.params(request)
        market = market_for_symbol(params.text(p, "symbol", required=True))
        interval = params.text(p, "interval", required=True)
        if interval not in KLINE_INTERVALS:
            raise BinanceError(-1120, "Invalid interval.")
        time_zone = params.text(p, "timeZone")
        if time_zone not in (None, "0", "+00:00", "-00:00", "00:00"):
            raise invalid_value("timeZone")
        start, end = params.integer(p, "startTime"), params.integer(p, "endTime")
        if start is not None and end is not None and start > end:
            raise BinanceError(-1128, "Combination of optional parameters invalid.")
        limit = _limit(p, default=500, maximum=1000)
        candles = marketdata.klines_list(
            market=market, interval=interval, start=to_time(start), end=to_time(end), limit=limit
        )
        return Response([render.kline(candle) for candle in candles])


def _tickers(markets: list[Market], *, full: bool) -> list[dict]:
    symbols = [market.symbol for market in markets]
    rows = {row["market"]: row for row in marketdata.tickers(symbols=symbols)}
    tops = marketdata.depth_snapshots(symbols=symbols, limit=1)
    lasts = marketdata.last_trades(symbols=symbols)
    now = now_ms()
    tickers = [
        render.ticker_24hr(binance_symbol(m), rows.get(m.symbol), tops[m.symbol], lasts[m.symbol], now_ms=now)
        for m in markets
    ]
    return tickers if full else [render.ticker_mini(t) for t in tickers]


def _one_or_list(p: params.Params, rows: list[dict]) -> Response:
    """Binance answers an object for ``symbol=`` and a list otherwise."""
    return Response(rows[0] if params.text(p, "symbol") is not None else rows)


class Ticker24hrView(PublicView):
    def get(self, request: Request) -> Response:
        p = self.params(request)
        kind = params.choice(p, "type", ("FULL", "MINI"), error=invalid_value("type")) or "FULL"
        return _one_or_list(p, _tickers(_markets(p), full=kind == "FULL"))


class TickerPriceView(PublicView):
    def get(self, request: Request) -> Response:
        p = self.params(request)
        markets = _markets(p)
        symbols = [market.symbol for market in markets]
        lasts = marketdata.last_trades(symbols=symbols)
        rows = [
            {"symbol": binance_symbol(m), "price": lasts[m.symbol]["price"] if lasts[m.symbol] else "0"}
            for m in markets
        ]
        return _one_or_list(p, rows)


class BookTickerView(PublicView):
    def get(self, request: Request) -> Response:
        p = self.params(request)
        markets = _markets(p)
        tops = marketdata.depth_snapshots(symbols=[market.symbol for market in markets], limit=1)
        return _one_or_list(p, [render.book_ticker(binance_symbol(m), tops[m.symbol]) for m in markets])


# --- account ----------------------------------------------------------------------------------


def _fee_rates() -> tuple[Decimal, Decimal]:
    """The account-level commission Binance reports: here fees are per market, so the highest of them."""
    rates = market_list().aggregate(maker=Max("maker_fee_rate"), taker=Max("taker_fee_rate"))
    return rates["maker"] or Decimal(0), rates["taker"] or Decimal(0)


class AccountView(SignedView):
    def get(self, request: Request) -> Response:
        p = self.params(request)
        omit_zero = (params.text(p, "omitZeroBalances") or "false").lower() == "true"
        maker, taker = _fee_rates()
        balances = [
            {"asset": b.asset.symbol, "free": render.amount(b.available), "locked": render.amount(b.locked)}
            for b in balances_for_user(user=request.user)
            if not omit_zero or b.available or b.locked
        ]
        return Response(
            {
                "makerCommission": render.bps(maker),
                "takerCommission": render.bps(taker),
                "buyerCommission": 0,
                "sellerCommission": 0,
                "commissionRates": {
                    "maker": render.amount(maker),
                    "taker": render.amount(taker),
                    "buyer": "0",
                    "seller": "0",
                },
                "canTrade": True,
                "canWithdraw": False,
                "canDeposit": False,
                "brokered": False,
                "requireSelfTradePrevention": False,
                "preventSor": False,
                "updateTime": now_ms(),
                "accountType": "SPOT",
                "balances": balances,
                "permissions": ["SPOT"],
                "uid": request.user.pk,
            }
        )


class TradeFeeView(SignedView):
    def get(self, request: Request) -> Response:
        p = self.params(request)
        return Response(
            [
                {
                    "symbol": binance_symbol(m),
                    "makerCommission": render.amount(m.maker_fee_rate),
                    "takerCommission": render.amount(m.taker_fee_rate),
                }
                for m in _markets(p)
            ]
        )


class CoinsView(SignedView):
    """``capital/config/getall``: every asset with the user's amounts (no on-chain deposits or withdrawals here)."""

    def get(self, request: Request) -> Response:
        held = {b.asset_id: b for b in balances_for_user(user=request.user)}
        return Response([render.coin(asset, held.get(asset.pk)) for asset in asset_list()])


# --- orders -----------------------------------------------------------------------------------

_STOP_TYPES = {
    "STOP_LOSS": "Stop loss",
    "STOP_LOSS_LIMIT": "Stop loss limit",
    "TAKE_PROFIT": "Take profit",
    "TAKE_PROFIT_LIMIT": "Take profit limit",
}
_UNSUPPORTED_PARAMS = ("stopPrice", "trailingDelta", "icebergQty", "pegPriceType", "pegOffsetValue", "pegOffsetType")
_STP = ("NONE", "EXPIRE_TAKER", "EXPIRE_MAKER", "EXPIRE_BOTH", "DECREMENT", "TRANSFER")
_CANCEL_ID = re.compile(r"^[A-Za-z0-9_.:\-]{1,64}$")


def _new_order(p: params.Params) -> tuple[services.OrderRequest, str]:
    """Binance's new-order parameters as our ``OrderRequest``, and the response type asked for."""
    side = params.choice(p, "side", ("BUY", "SELL"), error=BinanceError(-1117, "Invalid side."), required=True)
    kind = params.text(p, "type", required=True).upper()
    if kind in _STOP_TYPES:
        raise BinanceError(-1013, f"{_STOP_TYPES[kind]} orders are not supported for this symbol.")
    if kind not in render.ORDER_TYPES:
        raise BinanceError(-1116, "Invalid orderType.")
    for name in _UNSUPPORTED_PARAMS:
        if params.text(p, name) not in (None, "0"):
            raise not_required(name)
    tif = params.choice(p, "timeInForce", ("GTC", "IOC", "FOK"), error=BinanceError(-1115, "Invalid timeInForce."))
    quantity, quote = params.decimal(p, "quantity"), params.decimal(p, "quoteOrderQty")
    price = params.decimal(p, "price")
    if kind in ("LIMIT", "LIMIT_MAKER"):
        if kind == "LIMIT" and tif is None:
            raise mandatory("timeInForce")
        if kind == "LIMIT_MAKER" and tif is not None:
            raise not_required("timeInForce")
        if quantity is None:
            raise mandatory("quantity")
        if price is None:
            raise mandatory("price")
        if quote is not None:
            raise not_required("quoteOrderQty")
    else:
        if price is not None:
            raise not_required("price")
        if tif is not None:
            raise not_required("timeInForce")
        if quantity is None and quote is None:
            raise BinanceError(-1102, "Param 'quantity' or 'quoteOrderQty' must be sent, but both were empty/null!")
        if quantity is not None and quote is not None:
            raise not_required("quoteOrderQty")
        if quote is not None and side == "SELL":
            raise unsupported_combination()  # selling to receive a quote amount is not an order type here
    client_order_id = params.text(p, "newClientOrderId")
    if client_order_id is not None and not CLIENT_ORDER_ID.match(client_order_id):
        raise illegal("newClientOrderId", CLIENT_ORDER_ID.pattern)
    stp = params.choice(p, "selfTradePreventionMode", _STP, error=invalid_value("selfTradePreventionMode"))
    if stp is not None and stp not in render.STP_MODES:
        raise BinanceError(
            -1013, f"Self-trade prevention mode {stp} is not allowed for this symbol; use one of "
            f"{', '.join(render.STP_MODES)}."
        )  # fmt: skip
    response_type = params.choice(
        p, "newOrderRespType", ("ACK", "RESULT", "FULL"), error=invalid_value("newOrderRespType")
    )
    request = services.OrderRequest(
        side=side.lower(),
        type=kind.lower(),
        quantity=quantity,
        price=price,
        quote_quantity=quote,
        time_in_force=(tif or "GTC").lower(),
        stp_mode=(stp or "NONE").lower(),
        client_order_id=client_order_id,
    )
    return request, response_type or ("FULL" if kind in ("LIMIT", "MARKET") else "ACK")


def _order_lookup(p: params.Params) -> dict:
    order_id = params.integer(p, "orderId")
    client_order_id = params.text(p, "origClientOrderId")
    if order_id is None and client_order_id is None:
        raise BinanceError(-1102, "Param 'origClientOrderId' or 'orderId' must be sent, but both were empty/null!")
    return {"order_id": order_id} if order_id is not None else {"client_order_id": client_order_id}


def _own_order(request: Request, market: Market, lookup: dict, *, cancelling: bool) -> Order:
    """One of the user's orders in ``market``; another market's is as unknown as a missing one."""
    try:
        order = orders.order_get(user=request.user, **lookup)
    except ApplicationError as error:
        raise from_application_error(error, cancelling=cancelling) from None
    if order.market_id != market.pk:
        raise BinanceError(-2011, UNKNOWN_ORDER) if cancelling else BinanceError(-2013, ORDER_DOES_NOT_EXIST)
    order.market = market
    return order


class OrderView(ThrottleOrderPlacement, SignedView):
    """Place (POST), query (GET) and cancel (DELETE) one order."""

    def post(self, request: Request) -> Response:
        p = self.params(request)
        market = market_for_symbol(params.text(p, "symbol", required=True))
        symbol = binance_symbol(market)
        order_request, response_type = _new_order(p)
        user = request.user
        if response_type == "ACK":
            order = services.place_order(user=user, market=market, request=order_request)
            return Response(render.order_ack(order, symbol))
        with waiting.subscribe(user.pk) as events:
            placed = services.place_order(user=user, market=market, request=order_request)
            waiting.wait_for_orders(events, [placed.pk], done=waiting.processed, timeout=waiting.wait_seconds())
        order = _own_order(request, market, {"order_id": placed.pk}, cancelling=False)
        if order.status == Order.Status.REJECTED and order.end_reason == "post_only_would_take":
            # Binance refuses such an order outright; here the engine decided after the ack.
            raise BinanceError(-2010, WOULD_TAKE)
        body = render.order_result(order, symbol)
        if response_type == "FULL":
            fills = orders.trades_for_user(user=user, market=market, order_id=order.pk).order_by("trade_id")
            body["fills"] = [render.fill(trade, order=order) for trade in fills]
        return Response(body)

    def get(self, request: Request) -> Response:
        p = self.params(request)
        market = market_for_symbol(params.text(p, "symbol", required=True))
        order = _own_order(request, market, _order_lookup(p), cancelling=False)
        return Response(render.order_query(order, binance_symbol(market)))

    def delete(self, request: Request) -> Response:
        p = self.params(request)
        market = market_for_symbol(params.text(p, "symbol", required=True))
        lookup = _order_lookup(p)
        cancel_id = _cancel_client_id(p)
        order = _own_order(request, market, lookup, cancelling=True)
        restriction = params.choice(
            p, "cancelRestrictions", ("ONLY_NEW", "ONLY_PARTIALLY_FILLED"), error=invalid_value("cancelRestrictions")
        )
        if (restriction == "ONLY_NEW" and order.filled_quantity) or (
            restriction == "ONLY_PARTIALLY_FILLED" and order.status != Order.Status.PARTIALLY_FILLED
        ):
            raise BinanceError(-2011, "Order was not canceled due to cancel restrictions.")
        with waiting.subscribe(request.user.pk) as events:
            try:
                services.request_cancel(user=request.user, order_id=order.pk)
            except ApplicationError as error:
                raise from_application_error(error, cancelling=True) from None
            waiting.wait_for_orders(events, [order.pk], done=waiting.ended, timeout=waiting.wait_seconds())
        order = _own_order(request, market, {"order_id": order.pk}, cancelling=True)
        return Response(render.order_cancel(order, binance_symbol(market), cancel_client_id=cancel_id))


def _cancel_client_id(p: params.Params) -> str:
    cancel_id = params.text(p, "newClientOrderId")
    if cancel_id is None:
        return secrets.token_urlsafe(16)
    if not _CANCEL_ID.match(cancel_id):
        raise illegal("newClientOrderId", _CANCEL_ID.pattern)
    return cancel_id


class OpenOrdersView(SignedView):
    """The user's live orders (GET, optionally of one symbol); cancel all of one symbol's (DELETE)."""

    def get(self, request: Request) -> Response:
        p = self.params(request)
        symbol = params.text(p, "symbol")
        market = market_for_symbol(symbol) if symbol is not None else None
        live = orders.orders_open_for_user(user=request.user, market=market).order_by("pk")
        return Response([render.order_query(order, _symbol_of(order)) for order in live])

    def delete(self, request: Request) -> Response:
        p = self.params(request)
        market = market_for_symbol(params.text(p, "symbol", required=True))
        with waiting.subscribe(request.user.pk) as events:
            ids = services.request_cancel_all(user=request.user, market=market)
            if not ids:
                raise BinanceError(-2011, UNKNOWN_ORDER)
            waiting.wait_for_orders(events, ids, done=waiting.ended, timeout=waiting.wait_seconds())
        cancelled = orders.order_history_for_user(user=request.user, market=market, order_ids=ids).order_by("pk")
        symbol = binance_symbol(market)
        return Response(
            [render.order_cancel(order, symbol, cancel_client_id=secrets.token_urlsafe(16)) for order in cancelled]
        )


def _symbol_of(order: Order) -> str:
    return f"{order.market.base.symbol}{order.market.quote.symbol}"


def _page(query, *, ascending: bool, limit: int) -> list:
    """The first ``limit`` rows of ``query`` (ordered oldest first) when ``ascending``, else the last ``limit``."""
    return list(query[:limit]) if ascending else list(query.reverse()[:limit])[::-1]


class AllOrdersView(SignedView):
    def get(self, request: Request) -> Response:
        p = self.params(request)
        market = market_for_symbol(params.text(p, "symbol", required=True))
        from_id = params.integer(p, "orderId")
        start, end = params.integer(p, "startTime"), params.integer(p, "endTime")
        limit = _limit(p, default=500, maximum=1000)
        history = orders.order_history_for_user(
            user=request.user,
            market=market,
            start=to_time(start),
            end=to_time(end + 1) if end is not None else None,
            from_id=from_id,
        ).order_by("pk")
        rows = _page(history, ascending=from_id is not None or start is not None, limit=limit)
        symbol = binance_symbol(market)
        return Response([render.order_query(order, symbol) for order in rows])


class MyTradesView(SignedView):
    def get(self, request: Request) -> Response:
        p = self.params(request)
        market = market_for_symbol(params.text(p, "symbol", required=True))
        order_id, from_id = params.integer(p, "orderId"), params.integer(p, "fromId")
        start, end = params.integer(p, "startTime"), params.integer(p, "endTime")
        if from_id is not None and (start is not None or end is not None):
            raise BinanceError(-1128, "Combination of optional parameters invalid.")
        limit = _limit(p, default=500, maximum=1000)
        trades = (
            orders.trades_for_user(
                user=request.user,
                market=market,
                start=to_time(start),
                end=to_time(end + 1) if end is not None else None,
                order_id=order_id,
                from_trade_id=from_id,
            )
            .select_related("market__base", "market__quote")
            .order_by("trade_id")
        )
        rows = _page(trades, ascending=from_id is not None or start is not None, limit=limit)
        symbol = binance_symbol(market)
        user_id = request.user.pk
        return Response([row for trade in rows for row in render.my_trades(trade, user_id=user_id, symbol=symbol)])


# --- user data stream (listen keys) -----------------------------------------------------------


class UserDataStreamView(ApiKeyView):
    """POST: a listen key for ``/ws/<listenKey>``; PUT: keep it alive (60 minutes); DELETE: close it."""

    def post(self, request: Request) -> Response:
        return Response({"listenKey": compat_services.listen_key_create(user=request.user)})

    def put(self, request: Request) -> Response:
        listen_key = params.text(self.params(request), "listenKey", required=True)
        compat_services.listen_key_keepalive(user=request.user, listen_key=listen_key)
        return Response({})

    def delete(self, request: Request) -> Response:
        listen_key = params.text(self.params(request), "listenKey", required=True)
        compat_services.listen_key_close(user=request.user, listen_key=listen_key)
        return Response({})


class UnknownEndpointView(PublicView):
    """Anything else under the Binance prefixes: a clear "not supported" instead of an HTML 404."""

    def _answer(self, request: Request, *args, **kwargs) -> Response:
        return Response({"code": -1020, "msg": "This operation is not supported."}, status=404)

    get = post = put = delete = _answer
