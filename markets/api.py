"""REST endpoints for markets and their filters (public)."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from exchange_site.fields import AmountField
from markets import selectors
from markets.models import Market


class MarketSerializer(serializers.ModelSerializer):
    base = serializers.CharField(source="base.symbol")
    quote = serializers.CharField(source="quote.symbol")
    base_precision = serializers.IntegerField(source="base.precision")
    quote_precision = serializers.IntegerField(source="quote.precision")
    tick_size = AmountField()
    lot_size = AmountField()
    min_notional = AmountField()
    max_quantity = AmountField()
    max_notional = AmountField(allow_null=True)
    maker_fee_rate = AmountField()
    taker_fee_rate = AmountField()

    class Meta:
        model = Market
        fields = [
            "symbol", "base", "quote", "base_precision", "quote_precision", "status", "tick_size", "lot_size",
            "min_notional", "max_quantity", "max_notional", "maker_fee_rate", "taker_fee_rate",
        ]  # fmt: skip


class MarketsView(APIView):
    """Every market with the filters an order must pass (tick, lot, minimum notional) and its fees."""

    authentication_classes = ()
    permission_classes = (AllowAny,)

    @extend_schema(responses=MarketSerializer(many=True))
    def get(self, request: Request) -> Response:
        return Response(MarketSerializer(selectors.market_list(), many=True).data)


class MarketDetailView(APIView):
    authentication_classes = ()
    permission_classes = (AllowAny,)

    @extend_schema(responses=MarketSerializer)
    def get(self, request: Request, symbol: str) -> Response:
        return Response(MarketSerializer(selectors.market_get(symbol=symbol)).data)
