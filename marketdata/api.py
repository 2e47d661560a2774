"""Public REST market data: depth snapshot, recent trades, 24h tickers (served from Redis, not the database).

The engine keeps these read models current after every committed batch
(``marketdata.broadcast``); a request reads one Redis key or runs one small
script, so the endpoints cost the same however busy the market is.
"""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from marketdata import selectors
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
