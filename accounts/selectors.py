"""Reads of users' money: balances, ledger history, API keys, and the system accounts."""

from __future__ import annotations

import functools

from django.db.models import QuerySet

from accounts.models import ApiKey, Asset, Balance, User


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


def api_keys_for_user(*, user: User) -> QuerySet[ApiKey]:
    return ApiKey.objects.filter(user=user).order_by("-created_at")


def asset_list() -> QuerySet[Asset]:
    return Asset.objects.order_by("symbol")
