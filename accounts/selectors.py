"""Reads of users' money: balances, ledger history, API keys, and the system accounts."""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

from django.db.models import QuerySet

from accounts.models import ApiKey, Asset, Balance, LedgerEntry, RecoveryCode, User
from exchange_site.errors import ApplicationError


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


def ledger_for_user(*, user: User, asset: Asset | None = None) -> QuerySet[LedgerEntry]:
    """``user``'s ledger entries, newest first: every change to their balances and why it happened."""
    entries = LedgerEntry.objects.filter(user=user).select_related("asset")
    if asset is not None:
        entries = entries.filter(asset=asset)
    return entries.order_by("-id")


@dataclass(frozen=True, slots=True)
class AssetBalance:
    asset: Asset
    available: Decimal
    locked: Decimal


def balances_of_assets(*, user: User, assets: Sequence[Asset]) -> list[AssetBalance]:
    """``user``'s balance of each of ``assets``, in that order; zero for an asset never held (no row yet)."""
    held = {balance.asset_id: balance for balance in Balance.objects.filter(user=user, asset__in=assets)}
    return [
        AssetBalance(asset, held[asset.pk].available, held[asset.pk].locked)
        if asset.pk in held
        else AssetBalance(asset, Decimal(0), Decimal(0))
        for asset in assets
    ]


def asset_list() -> QuerySet[Asset]:
    return Asset.objects.order_by("symbol")


def withdrawals_for_user(*, user: User) -> QuerySet[LedgerEntry]:
    """``user``'s withdrawals, newest first: their ledger debits with reason ``withdrawal``."""
    return (
        LedgerEntry.objects.filter(user=user, reason=LedgerEntry.Reason.WITHDRAWAL, bucket=LedgerEntry.Bucket.AVAILABLE)
        .select_related("asset")
        .order_by("-id")
    )


@dataclass(frozen=True, slots=True)
class Withdrawal:
    """One withdrawal as a person reads it: the amount paid out (positive), where to, and when."""

    id: int
    asset: Asset
    amount: Decimal
    address: str
    created_at: dt.datetime


def recent_withdrawals(*, user: User, limit: int = 20) -> list[Withdrawal]:
    """``user``'s last ``limit`` withdrawals, newest first (the address is kept in the ledger entry's note)."""
    return [
        Withdrawal(entry.pk, entry.asset, -entry.amount, entry.note.removeprefix("to "), entry.created_at)
        for entry in withdrawals_for_user(user=user)[:limit]
    ]


def asset_by_symbol(*, symbol: str) -> Asset:
    """The asset named ``symbol`` (any case), or ``ApplicationError`` ``unknown_asset`` (404)."""
    asset = Asset.objects.filter(symbol=symbol.upper()).first()
    if asset is None:
        raise ApplicationError(f"There is no asset {symbol!r}.", code="unknown_asset", status=404)
    return asset


def recovery_codes_remaining(*, user: User) -> int:
    """How many of ``user``'s two-factor recovery codes are still unused."""
    return RecoveryCode.objects.filter(device__user=user, used_at__isnull=True).count()
