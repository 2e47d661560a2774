"""REST endpoints for a user's own balances and API keys."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts import selectors, services
from accounts.models import ApiKey, Balance
from exchange_site.fields import AmountField


class BalanceSerializer(serializers.ModelSerializer):
    asset = serializers.CharField(source="asset.symbol")
    available = AmountField()
    locked = AmountField()

    class Meta:
        model = Balance
        fields = ["asset", "available", "locked"]


class BalancesView(APIView):
    """Your balance of every asset you hold: available to trade, and locked in open orders."""

    @extend_schema(responses=BalanceSerializer(many=True))
    def get(self, request: Request) -> Response:
        balances = selectors.balances_for_user(user=request.user)
        return Response(BalanceSerializer(balances, many=True).data)


class ApiKeySerializer(serializers.ModelSerializer):
    class Meta:
        model = ApiKey
        fields = ["id", "label", "key", "created_at", "revoked_at"]


class ApiKeyCreateSerializer(serializers.Serializer):
    label = serializers.CharField(max_length=64, required=False, allow_blank=True, default="")


class ApiKeyCreatedSerializer(ApiKeySerializer):
    secret = serializers.CharField(read_only=True)

    class Meta(ApiKeySerializer.Meta):
        fields = [*ApiKeySerializer.Meta.fields, "secret"]


class SessionOnly(BasePermission):
    """Key management needs a logged-in person: a leaked key must not be able to mint or revoke keys."""

    message = "API keys are managed from a logged-in session, not with an API key."

    def has_permission(self, request, view) -> bool:
        return bool(request.user and request.user.is_authenticated and not isinstance(request.auth, ApiKey))


class ApiKeysView(APIView):
    """List your API keys, or create one (its secret is shown in this response only)."""

    permission_classes = (SessionOnly,)

    @extend_schema(responses=ApiKeySerializer(many=True))
    def get(self, request: Request) -> Response:
        return Response(ApiKeySerializer(selectors.api_keys_for_user(user=request.user), many=True).data)

    @extend_schema(request=ApiKeyCreateSerializer, responses={201: ApiKeyCreatedSerializer})
    def post(self, request: Request) -> Response:
        payload = ApiKeyCreateSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        api_key, secret = services.api_key_create(user=request.user, label=payload.validated_data["label"])
        api_key.secret = secret
        return Response(ApiKeyCreatedSerializer(api_key).data, status=status.HTTP_201_CREATED)


class ApiKeyDetailView(APIView):
    """Revoke one of your API keys."""

    permission_classes = (SessionOnly,)

    @extend_schema(responses=ApiKeySerializer)
    def delete(self, request: Request, key_id: int) -> Response:
        api_key = services.api_key_revoke(user=request.user, key_id=key_id)
        return Response(ApiKeySerializer(api_key).data)
