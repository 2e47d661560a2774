"""REST endpoints for a user's own balances, API keys and withdrawals."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts import selectors, services
from accounts.models import ApiKey, ApiScope, Balance, LedgerEntry, default_api_scopes
from exchange_site.amounts import plain
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
        fields = ["id", "label", "key", "scopes", "ip_allowlist", "created_at", "revoked_at"]


class ApiKeyCreateSerializer(serializers.Serializer):
    label = serializers.CharField(max_length=64, required=False, allow_blank=True, default="")
    scopes = serializers.ListField(
        child=serializers.ChoiceField(choices=ApiScope.values),
        required=False,
        default=default_api_scopes,
        help_text="read, trade, withdraw; default read and trade. withdraw needs ip_allowlist and otp_code.",
    )
    ip_allowlist = serializers.ListField(
        child=serializers.CharField(max_length=64),
        required=False,
        default=list,
        max_length=32,
        help_text="IP addresses or CIDR networks the key may be used from; empty: anywhere.",
    )
    otp_code = serializers.CharField(
        max_length=16, required=False, allow_blank=True, default="", help_text="Two-factor code (for withdraw)."
    )


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
        data = payload.validated_data
        api_key, secret = services.api_key_create(
            user=request.user,
            label=data["label"],
            scopes=data["scopes"],
            ip_allowlist=data["ip_allowlist"],
            otp_code=data["otp_code"],
        )
        api_key.secret = secret
        return Response(ApiKeyCreatedSerializer(api_key).data, status=status.HTTP_201_CREATED)


class ApiKeyDetailView(APIView):
    """Revoke one of your API keys."""

    permission_classes = (SessionOnly,)

    @extend_schema(responses=ApiKeySerializer)
    def delete(self, request: Request, key_id: int) -> Response:
        api_key = services.api_key_revoke(user=request.user, key_id=key_id)
        return Response(ApiKeySerializer(api_key).data)


class WithdrawalRequestSerializer(serializers.Serializer):
    asset = serializers.CharField(max_length=16)
    amount = AmountField()
    address = serializers.CharField(max_length=128)
    otp_code = serializers.CharField(
        max_length=16,
        required=False,
        allow_blank=True,
        default="",
        help_text="Two-factor code from the authenticator app (sessions only; a recovery code is not accepted).",
    )


class WithdrawalSerializer(serializers.ModelSerializer):
    """A withdrawal as its ledger entry records it: the amount paid out (positive) and where to."""

    id = serializers.IntegerField()
    asset = serializers.CharField(source="asset.symbol")
    amount = serializers.SerializerMethodField()
    address = serializers.SerializerMethodField()

    class Meta:
        model = LedgerEntry
        fields = ["id", "asset", "amount", "address", "created_at"]

    def get_amount(self, entry: LedgerEntry) -> str:
        return plain(-entry.amount)

    def get_address(self, entry: LedgerEntry) -> str:
        return entry.note.removeprefix("to ")


class WithdrawalsView(APIView):
    """Withdraw from your available balance, or list your withdrawals (newest first).

    POST needs, from a session, two-factor authentication on and a current
    ``otp_code``; with an API key, the ``withdraw`` scope (such a key only
    answers from its IP allowlist).  Not enough available: 400
    ``insufficient_funds`` and nothing changes.
    """

    required_scopes = {"POST": ApiScope.WITHDRAW.value}

    @extend_schema(responses=WithdrawalSerializer(many=True))
    def get(self, request: Request) -> Response:
        entries = selectors.withdrawals_for_user(user=request.user)[:WITHDRAWALS_LISTED]
        return Response(WithdrawalSerializer(entries, many=True).data)

    @extend_schema(request=WithdrawalRequestSerializer, responses={201: BalanceSerializer})
    def post(self, request: Request) -> Response:
        payload = WithdrawalRequestSerializer(data=request.data)
        payload.is_valid(raise_exception=True)
        data = payload.validated_data
        asset = selectors.asset_by_symbol(symbol=data["asset"])
        services.withdrawal_request(
            user=request.user,
            asset=asset,
            amount=data["amount"],
            address=data["address"],
            api_key=request.auth if isinstance(request.auth, ApiKey) else None,
            otp_code=data["otp_code"],
        )
        balance = selectors.balances_of_assets(user=request.user, assets=[asset])[0]
        return Response(
            {"asset": asset.symbol, "available": plain(balance.available), "locked": plain(balance.locked)},
            status=status.HTTP_201_CREATED,
        )


WITHDRAWALS_LISTED = 100
