"""Operators' view of users, assets, balances and the ledger (balances are never edited here)."""

from django.contrib import admin
from django.contrib.auth.admin import UserAdmin

from accounts.models import ApiKey, Asset, Balance, LedgerEntry, User


class ReadOnlyAdmin(admin.ModelAdmin):
    """Rows that only services may write: visible, never editable."""

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(User)
class ExchangeUserAdmin(UserAdmin):
    list_display = ("username", "email", "kind", "is_staff", "is_active", "date_joined")
    list_filter = ("kind", "is_staff", "is_active")
    fieldsets = (*UserAdmin.fieldsets, ("Exchange", {"fields": ("kind",)}))


@admin.register(Asset)
class AssetAdmin(admin.ModelAdmin):
    list_display = ("symbol", "name", "precision")


@admin.register(Balance)
class BalanceAdmin(ReadOnlyAdmin):
    list_display = ("user", "asset", "available", "locked")
    list_filter = ("asset",)
    search_fields = ("user__username",)


@admin.register(LedgerEntry)
class LedgerEntryAdmin(ReadOnlyAdmin):
    list_display = ("id", "created_at", "user", "asset", "bucket", "amount", "reason", "order_id", "trade_id")
    list_filter = ("reason", "asset", "bucket")
    search_fields = ("user__username",)


@admin.register(ApiKey)
class ApiKeyAdmin(ReadOnlyAdmin):
    list_display = ("user", "label", "key", "created_at", "revoked_at")
    exclude = ("secret_encrypted",)
