"""Reads of users' money: balances, ledger history, API keys, and the system accounts."""

from __future__ import annotations

import functools
from decimal import Decimal

from django.db.models import QuerySet, Sum

from accounts.models import ApiKey, Asset, Balance, LedgerEntry, User


@functools.cache
def system_user_id(kind: str) -> int:
    """Id of the fee account or the outside-world account.

    Migration 0003 creates both; ``get_or_create`` covers a database emptied by
    a flush (transactional tests) without a special case elsewhere.
    """
    user, _ = User.objects.get_or_create(
        kind=kind, defaults={"username": f"_{kind}", "is_active": False, "password": "!"}
    )
    return user.id


def fee_user_id() -> int:
    return system_user_id(User.Kind.FEES)


def external_user_id() -> int:
    return system_user_id(User.Kind.EXTERNAL)


def balances_for_user(*, user: User) -> QuerySet[Balance]:
    return Balance.objects.filter(user=user).select_related("asset").order_by("asset__symbol")


def balance_get(*, user: User, asset: Asset) -> Balance:
    """The user's balance of ``asset``; an unsaved zero balance if they never held it."""
    return Balance.objects.filter(user=user, asset=asset).first() or Balance(user=user, asset=asset)


def ledger_for_user(*, user: User, asset: Asset | None = None) -> QuerySet[LedgerEntry]:
    entries = LedgerEntry.objects.filter(user=user).select_related("asset").order_by("-id")
    return entries.filter(asset=asset) if asset else entries


def asset_get(*, symbol: str) -> Asset:
    return Asset.objects.get(symbol=symbol.upper())


def net_external_flow(*, asset: Asset) -> Decimal:
    """Deposits minus withdrawals of ``asset``: what all balances together must add up to."""
    total = LedgerEntry.objects.filter(user_id=external_user_id(), asset=asset).aggregate(s=Sum("amount"))["s"]
    return -(total or Decimal(0))


def api_keys_for_user(*, user: User) -> QuerySet[ApiKey]:
    return ApiKey.objects.filter(user=user).order_by("-created_at")
