"""REST endpoints for placing, cancelling and reading your own orders and trades."""

from __future__ import annotations

import datetime as dt

from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.pagination import CursorPagination
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from exchange_site.amounts import plain, plain_or_none
from exchange_site.api import error_body, validation_error_body
from exchange_site.errors import ApplicationError
from exchange_site.fields import AmountField
from exchange_site.throttling import ThrottleOrderPlacement
from markets.models import Market
from markets.selectors import market_get
from orders import selectors, services
from orders.models import Order, Trade
from orders.parsing import parse_place_order


class OrderSerializer(serializers.ModelSerializer):
    market = serializers.CharField(source="market.symbol")
    # null where the order type has none (a market order's price, a quote order's quantity).
    price = AmountField(allow_null=True)
    quantity = AmountField(allow_null=True)
    quote_quantity = AmountField(allow_null=True)
    protection_price = AmountField(allow_null=True)
    filled_quantity = AmountField()
    filled_quote = AmountField()
    locked_amount = AmountField()
    cancel_requested = serializers.SerializerMethodField()

    class Meta:
        model = Order
        fields = [
            "id", "client_order_id", "market", "side", "type", "time_in_force", "stp_mode", "price", "quantity",
            "quote_quantity", "protection_price", "status", "filled_quantity", "filled_quote", "locked_amount",
            "end_reason", "cancel_requested", "created_at", "updated_at",
        ]  # fmt: skip

    def get_cancel_requested(self, order: Order) -> bool:
        return order.cancel_requested_at is not None

    def to_representation(self, order: Order) -> dict:
        """The fields above, built directly: on the order-entry path DRF's generic field walk cost more
        than the database round trip (measured with bench/profile_place.py)."""
        return {
            "id": order.pk,
            "client_order_id": order.client_order_id,
            "market": order.market.symbol,
            "side": order.side,
            "type": order.type,
            "time_in_force": order.time_in_force,
            "stp_mode": order.stp_mode,
            "price": plain_or_none(order.price),
            "quantity": plain_or_none(order.quantity),
            "quote_quantity": plain_or_none(order.quote_quantity),
            "protection_price": plain_or_none(order.protection_price),
            "status": order.status,
            "filled_quantity": plain_or_none(order.filled_quantity),
            "filled_quote": plain_or_none(order.filled_quote),
            "locked_amount": plain_or_none(order.locked_amount),
            "end_reason": order.end_reason,
            "cancel_requested": order.cancel_requested_at is not None,
            "created_at": _timestamp(order.created_at),
            "updated_at": _timestamp(order.updated_at),
        }


def _timestamp(value: dt.datetime | None) -> str | None:
    """ISO 8601 in UTC with a Z, as DRF renders datetimes."""
    if value is None:
        return None
    text = value.astimezone(dt.UTC).isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


class PlaceOrderSerializer(serializers.Serializer):
    market = serializers.CharField(max_length=32)
    side = serializers.ChoiceField(choices=Order.Side.choices)
    type = serializers.ChoiceField(choices=Order.Type.choices)
    quantity = AmountField(required=False, allow_null=True)
    price = AmountField(required=False, allow_null=True)
    quote_quantity = AmountField(required=False, allow_null=True)
    time_in_force = serializers.ChoiceField(choices=Order.TimeInForce.choices, default=Order.TimeInForce.GTC)
    stp_mode = serializers.ChoiceField(
        choices=Order.SelfTradePrevention.choices, default=Order.SelfTradePrevention.NONE
    )
    client_order_id = serializers.RegexField(
        r"^[A-Za-z0-9_.:\-]{1,64}$",
        required=False,
        allow_null=True,
        error_messages={"invalid": "Use 1 to 64 letters, digits, or the characters _ . : -"},
    )

    def to_internal_value(self, data):
        for name in ("side", "type", "time_in_force", "stp_mode"):
            if isinstance(data, dict) and isinstance(data.get(name), str):
                data = {**data, name: data[name].lower()}
        return super().to_internal_value(data)


class TradeSerializer(serializers.ModelSerializer):
    id = serializers.IntegerField(source="trade_id")
    market = serializers.CharField(source="market.symbol")
    price = AmountField()
    quantity = AmountField()
    quote_quantity = AmountField()
    side = serializers.SerializerMethodField()
    order_id = serializers.SerializerMethodField()
    fee = serializers.SerializerMethodField()
    fee_asset = serializers.SerializerMethodField()
    is_maker = serializers.SerializerMethodField()

    class Meta:
        model = Trade
        fields = [
            "id", "market", "price", "quantity", "quote_quantity", "side", "order_id", "fee", "fee_asset",
            "is_maker", "executed_at",
        ]  # fmt: skip

    def _is_buyer(self, trade: Trade) -> bool:
        return trade.buyer_id == self.context["user"].id

    def get_side(self, trade: Trade) -> str:
        return "buy" if self._is_buyer(trade) else "sell"

    def get_order_id(self, trade: Trade) -> int:
        return trade.buy_order_id if self._is_buyer(trade) else trade.sell_order_id

    def get_fee(self, trade: Trade) -> str:
        return plain(trade.buyer_fee if self._is_buyer(trade) else trade.seller_fee)

    def get_fee_asset(self, trade: Trade) -> str:
        market = trade.market
        return market.base.symbol if self._is_buyer(trade) else market.quote.symbol

    def get_is_maker(self, trade: Trade) -> bool:
        return trade.taker_side != self.get_side(trade)


class HistoryFilterSerializer(serializers.Serializer):
    market = serializers.CharField(required=False)
    status = serializers.ChoiceField(choices=Order.Status.choices, required=False)
    start = serializers.DateTimeField(required=False)
    end = serializers.DateTimeField(required=False)


class NewestFirst(CursorPagination):
    ordering = "-id"
    page_size_query_param = "limit"
    max_page_size = 1000


def cursor_page(name: str, serializer: type[serializers.Serializer]) -> serializers.Serializer:
    """The schema of one ``NewestFirst`` page: ``{"next", "previous", "results": [...]}`` (found by schemathesis:
    the lists were documented as bare arrays)."""
    return inline_serializer(
        name=name,
        fields={
            "next": serializers.URLField(allow_null=True),
            "previous": serializers.URLField(allow_null=True),
            "results": serializer(many=True),
        },
    )


def _market_or_none(symbol: str | None):
    return market_get(symbol=symbol) if symbol else None


class OrdersView(ThrottleOrderPlacement, APIView):
    """Place an order, or page through your order history (newest first)."""

    @extend_schema(
        parameters=[HistoryFilterSerializer, OpenApiParameter("limit", int)],
        responses=cursor_page("OrderPage", OrderSerializer),
        operation_id="v1_orders_list",
    )
    def get(self, request: Request) -> Response:
        filters = HistoryFilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        params = filters.validated_data
        orders = selectors.order_history_for_user(
            user=request.user,
            market=_market_or_none(params.get("market")),
            status=params.get("status"),
            start=params.get("start"),
            end=params.get("end"),
        )
        paginator = NewestFirst()
        page = paginator.paginate_queryset(orders, request, view=self)
        return paginator.get_paginated_response(OrderSerializer(page, many=True).data)

    @extend_schema(request=PlaceOrderSerializer, responses={201: OrderSerializer})
    def post(self, request: Request) -> Response:
        symbol, order_request = parse_place_order(request.data)
        order = services.place_order(user=request.user, market=market_get(symbol=symbol), request=order_request)
        return Response(OrderSerializer(order).data, status=status.HTTP_201_CREATED)


class BatchPlaceSerializer(serializers.Serializer):
    orders = serializers.ListField(
        child=serializers.DictField(), min_length=1, max_length=services.MAX_BATCH, allow_empty=False
    )


class BatchResultSerializer(serializers.Serializer):
    status = serializers.IntegerField(help_text="The HTTP status this order alone would have had.")
    order = OrderSerializer(required=False)
    error = serializers.DictField(required=False)


class BatchResultsSerializer(serializers.Serializer):
    results = BatchResultSerializer(many=True)


def _batch_result(outcome, ok_status: int) -> dict:
    if isinstance(outcome, ApplicationError):
        return {"status": outcome.status_code, "error": error_body(outcome.code, outcome.message, outcome.details)}
    if isinstance(outcome, serializers.ValidationError):
        return {"status": 400, "error": validation_error_body(outcome)}
    return {"status": ok_status, "order": OrderSerializer(outcome).data}


class OrdersBatchView(ThrottleOrderPlacement, APIView):
    """Place up to 20 orders at once; each is accepted or refused on its own (see each result's status)."""

    @extend_schema(request=BatchPlaceSerializer, responses=BatchResultsSerializer)
    def post(self, request: Request) -> Response:
        payload = BatchPlaceSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        parsed: list[tuple[Market, services.OrderRequest] | Exception] = []
        for item in payload.validated_data["orders"]:
            try:
                symbol, order_request = parse_place_order(item)
                parsed.append((market_get(symbol=symbol), order_request))
            except (serializers.ValidationError, ApplicationError) as refusal:
                parsed.append(refusal)
        valid = [p for p in parsed if isinstance(p, tuple)]
        placed = iter(services.place_orders(user=request.user, requests=valid))
        outcomes = [next(placed) if isinstance(p, tuple) else p for p in parsed]
        return Response({"results": [_batch_result(o, status.HTTP_201_CREATED) for o in outcomes]})


class CancelBatchSerializer(serializers.Serializer):
    order_ids = serializers.ListField(
        child=serializers.IntegerField(min_value=1), min_length=1, max_length=services.MAX_BATCH
    )


class CancelBatchView(APIView):
    """Cancel up to 20 of your orders by id; one result per id (202 when the cancel is on its way)."""

    @extend_schema(request=CancelBatchSerializer, responses=BatchResultsSerializer)
    def post(self, request: Request) -> Response:
        payload = CancelBatchSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        outcomes = services.request_cancels(user=request.user, order_ids=payload.validated_data["order_ids"])
        return Response({"results": [_batch_result(o, status.HTTP_202_ACCEPTED) for o in outcomes]})


class OpenOrdersView(APIView):
    """Your live orders (pending, open, partially filled), optionally of one market."""

    @extend_schema(parameters=[OpenApiParameter("market", str)], responses=OrderSerializer(many=True))
    def get(self, request: Request) -> Response:
        market = _market_or_none(request.query_params.get("market"))
        orders = selectors.orders_open_for_user(user=request.user, market=market)
        return Response(OrderSerializer(orders, many=True).data)


class OrderDetailView(APIView):
    """One of your orders by id; DELETE asks the engine to cancel it (202: the cancel is on its way)."""

    @extend_schema(responses=OrderSerializer)
    def get(self, request: Request, order_id: int) -> Response:
        return Response(OrderSerializer(selectors.order_get(user=request.user, order_id=order_id)).data)

    @extend_schema(responses={202: OrderSerializer})
    def delete(self, request: Request, order_id: int) -> Response:
        order = services.request_cancel(user=request.user, order_id=order_id)
        return Response(OrderSerializer(order).data, status=status.HTTP_202_ACCEPTED)


class OrderByClientIdView(APIView):
    """One of your orders by its client order id; DELETE cancels it."""

    @extend_schema(responses=OrderSerializer)
    def get(self, request: Request, client_order_id: str) -> Response:
        order = selectors.order_get(user=request.user, client_order_id=client_order_id)
        return Response(OrderSerializer(order).data)

    @extend_schema(responses={202: OrderSerializer})
    def delete(self, request: Request, client_order_id: str) -> Response:
        order = services.request_cancel(user=request.user, client_order_id=client_order_id)
        return Response(OrderSerializer(order).data, status=status.HTTP_202_ACCEPTED)


class CancelAllSerializer(serializers.Serializer):
    market = serializers.CharField(max_length=32)


class CancelAllResultSerializer(serializers.Serializer):
    market = serializers.CharField()
    order_ids = serializers.ListField(child=serializers.IntegerField())


class CancelAllView(APIView):
    """Cancel every live order you have in one market."""

    @extend_schema(request=CancelAllSerializer, responses={202: CancelAllResultSerializer})
    def post(self, request: Request) -> Response:
        payload = CancelAllSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        market = market_get(symbol=payload.validated_data["market"])
        ids = services.request_cancel_all(user=request.user, market=market)
        return Response({"market": market.symbol, "order_ids": ids}, status=status.HTTP_202_ACCEPTED)


class MyTradesView(APIView):
    """Your trades (newest first), with the fee you paid on each."""

    @extend_schema(
        parameters=[OpenApiParameter("market", str), OpenApiParameter("limit", int)],
        responses=cursor_page("TradePage", TradeSerializer),
        operation_id="v1_trades_list",
    )
    def get(self, request: Request) -> Response:
        market = _market_or_none(request.query_params.get("market"))
        trades = selectors.trades_for_user(user=request.user, market=market).select_related(
            "market__base", "market__quote"
        )
        paginator = NewestFirst()
        page = paginator.paginate_queryset(trades, request, view=self)
        return paginator.get_paginated_response(TradeSerializer(page, many=True, context={"user": request.user}).data)
