"""Public REST market data (docs/realtime.md): depth snapshot, recent trades, 24h tickers, candles.

The engine keeps depth, trades and tickers current in Redis after every
committed batch (``marketdata.broadcast``); a request reads one Redis key or
runs one small script, so those endpoints cost the same however busy the
market is.  Candles are rows the Celery aggregation keeps (``marketdata.klines``).
"""

from __future__ import annotations

import datetime as dt

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from exchange_site.amounts import plain
from exchange_site.errors import ApplicationError
from marketdata import selectors
from marketdata.klines import EPOCH, to_millis
from marketdata.models import INTERVALS, Kline
from marketdata.streams import KLINE_INTERVALS
from markets.selectors import market_get, market_list


class DepthQuerySerializer(serializers.Serializer):
    limit = serializers.IntegerField(min_value=1, max_value=5000, default=100)


class TradesQuerySerializer(serializers.Serializer):
    limit = serializers.IntegerField(min_value=1, max_value=selectors.TRADES_KEPT, default=100)


# Response shapes, for the OpenAPI schema: the data itself is stored ready to send.
class DepthSerializer(serializers.Serializer):
    lastUpdateId = serializers.IntegerField()  # Binance's field name, which depth clients expect
    bids = serializers.ListField(child=serializers.ListField(child=serializers.CharField()))
    asks = serializers.ListField(child=serializers.ListField(child=serializers.CharField()))


class PublicTradeSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    price = serializers.CharField()
    qty = serializers.CharField()
    quote_qty = serializers.CharField()
    time = serializers.IntegerField(help_text="Milliseconds since the epoch.")
    taker_side = serializers.ChoiceField(choices=["buy", "sell"])
    is_buyer_maker = serializers.BooleanField()


class TickerSerializer(serializers.Serializer):
    market = serializers.CharField()
    open = serializers.CharField(allow_null=True)
    high = serializers.CharField(allow_null=True)
    low = serializers.CharField(allow_null=True)
    close = serializers.CharField(allow_null=True)
    volume = serializers.CharField()
    quote_volume = serializers.CharField()
    change = serializers.CharField(allow_null=True)
    change_percent = serializers.CharField(allow_null=True)
    trades = serializers.IntegerField()
    best_bid = serializers.CharField(allow_null=True)
    best_ask = serializers.CharField(allow_null=True)
    open_time = serializers.IntegerField(allow_null=True)
    close_time = serializers.IntegerField(allow_null=True)


class PublicView(APIView):
    authentication_classes = ()
    permission_classes = (AllowAny,)


class DepthView(PublicView):
    """The aggregated book, best levels first, with the ``lastUpdateId`` that ``depth@M`` updates continue from."""

    @extend_schema(parameters=[DepthQuerySerializer], responses=DepthSerializer)
    def get(self, request: Request, symbol: str) -> Response:
        market = market_get(symbol=symbol)
        query = DepthQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        return Response(selectors.depth_snapshot(symbol=market.symbol, limit=query.validated_data["limit"]))


class RecentTradesView(PublicView):
    """The market's latest trades, oldest first."""

    @extend_schema(parameters=[TradesQuerySerializer], responses=PublicTradeSerializer(many=True))
    def get(self, request: Request, symbol: str) -> Response:
        market = market_get(symbol=symbol)
        query = TradesQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        return Response(selectors.recent_trades(symbol=market.symbol, limit=query.validated_data["limit"]))


class TickerView(PublicView):
    """The market's 24h rolling statistics (to the minute) with its best bid and ask."""

    @extend_schema(responses=TickerSerializer)
    def get(self, request: Request, symbol: str) -> Response:
        market = market_get(symbol=symbol)
        found = selectors.tickers(symbols=[market.symbol])
        return Response(found[0] if found else _empty_ticker(market.symbol))


class TickersView(PublicView):
    """The 24h ticker of every market."""

    @extend_schema(responses=TickerSerializer(many=True))
    def get(self, request: Request) -> Response:
        symbols = [market.symbol for market in market_list()]
        published = {row["market"]: row for row in selectors.tickers(symbols=symbols)}
        return Response([published.get(symbol) or _empty_ticker(symbol) for symbol in symbols])


def _empty_ticker(symbol: str) -> dict:
    """A market whose engine has not published yet (never started): no statistics."""
    return {
        "market": symbol, "open": None, "high": None, "low": None, "close": None, "volume": "0",
        "quote_volume": "0", "change": None, "change_percent": None, "trades": 0, "best_bid": None,
        "best_ask": None, "open_time": None, "close_time": None,
    }  # fmt: skip


MAX_KLINES = 1000
# The last millisecond a datetime can hold (9999-12-31T23:59:59.999Z).
MAX_TIME_MS = 253_402_300_799_999


class KlinesQuerySerializer(serializers.Serializer):
    interval = serializers.ChoiceField(
        choices=KLINE_INTERVALS,
        help_text="1m 5m 15m 1h 4h 1d 1w",
        error_messages={"invalid_choice": f'"{{input}}" is not an interval; use one of {" ".join(KLINE_INTERVALS)}.'},
    )
    start_time = serializers.IntegerField(
        required=False, min_value=0, max_value=MAX_TIME_MS, help_text="ms since the epoch; candles opening at or after"
    )
    end_time = serializers.IntegerField(
        required=False, min_value=0, max_value=MAX_TIME_MS, help_text="ms since the epoch; candles opening at or before"
    )
    limit = serializers.IntegerField(required=False, default=500, min_value=1, max_value=MAX_KLINES)


class KlineSerializer(serializers.Serializer):
    """The response's shape, for the schema; ``_kline`` renders it directly."""

    open_time = serializers.IntegerField(help_text="ms since the epoch")
    close_time = serializers.IntegerField(help_text="ms since the epoch: the bucket's last millisecond")
    open = serializers.CharField()
    high = serializers.CharField()
    low = serializers.CharField()
    close = serializers.CharField()
    volume = serializers.CharField(help_text="base quantity traded")
    quote_volume = serializers.CharField(help_text="quote quantity traded")
    trades = serializers.IntegerField()
    closed = serializers.BooleanField(help_text="whether the bucket had ended when this answer was made")


# Which query parameter failed -> the error code a client can switch on.
_CODES = {
    "interval": "invalid_interval",
    "start_time": "invalid_time",
    "end_time": "invalid_time",
    "limit": "invalid_limit",
}


def _parse(query) -> dict:
    params = KlinesQuerySerializer(data=query)
    if not params.is_valid():
        field, messages = next(iter(params.errors.items()))
        raise ApplicationError(f"{field}: {messages[0]}", code=_CODES[field], details={"fields": params.errors})
    values = params.validated_data
    start, end = values.get("start_time"), values.get("end_time")
    if start is not None and end is not None and start > end:
        raise ApplicationError(
            f"end_time ({end}) is before start_time ({start}).",
            code="invalid_time_range",
            details={"start_time": start, "end_time": end},
        )
    return values


def _kline(candle: Kline, now: dt.datetime) -> dict:
    return {
        "open_time": to_millis(candle.open_time),
        "close_time": to_millis(candle.close_time),
        "open": plain(candle.open),
        "high": plain(candle.high),
        "low": plain(candle.low),
        "close": plain(candle.close),
        "volume": plain(candle.volume),
        "quote_volume": plain(candle.quote_volume),
        "trades": candle.trades,
        "closed": candle.open_time + INTERVALS[candle.interval] <= now,
    }


def _time(ms: int | None) -> dt.datetime | None:
    return None if ms is None else EPOCH + dt.timedelta(milliseconds=ms)


class KlinesView(APIView):
    """Candles of a market, oldest first.

    With ``start_time``: the first ``limit`` candles opening at or after it;
    without: the last ``limit`` up to ``end_time`` (or now).  A bucket without
    trades has no candle: draw a gap or carry the last close forward.
    """

    authentication_classes = ()
    permission_classes = (AllowAny,)

    @extend_schema(parameters=[KlinesQuerySerializer], responses=KlineSerializer(many=True))
    def get(self, request: Request, symbol: str) -> Response:
        market = market_get(symbol=symbol)
        params = _parse(request.query_params)
        candles = selectors.klines_list(
            market=market,
            interval=params["interval"],
            start=_time(params.get("start_time")),
            end=_time(params.get("end_time")),
            limit=params["limit"],
        )
        now = dt.datetime.now(dt.UTC)
        return Response([_kline(candle, now) for candle in candles])
