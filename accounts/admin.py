"""Operators' view of users, assets, balances and the ledger.

Balances are never edited here: a deposit or a withdrawal is a form that calls
``accounts.services.deposit`` / ``withdraw``, which write the ledger entries
beside the balance change.  Balances and the ledger are read-only.
"""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin
from django.core.exceptions import PermissionDenied
from django.db.models import Count, Q
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse

from accounts import services
from accounts.models import ApiKey, Asset, Balance, LedgerEntry, TwoFactorDevice, User
from exchange_site.amounts import plain
from exchange_site.errors import ApplicationError
from orders.services import request_cancel_all_by_operator


class ReadOnlyAdmin(admin.ModelAdmin):
    """Rows that only services may write: visible, never editable."""

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


class BalanceInline(admin.TabularInline):
    """A user's balances on their page, read-only: they change through deposits, withdrawals and trades."""

    model = Balance
    fields = ("asset", "available_amount", "locked_amount")
    readonly_fields = fields
    extra = 0
    can_delete = False
    ordering = ("asset__symbol",)

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    @admin.display(description="available")
    def available_amount(self, balance: Balance) -> str:
        return plain(balance.available)

    @admin.display(description="locked")
    def locked_amount(self, balance: Balance) -> str:
        return plain(balance.locked)


class MoneyMovementForm(forms.Form):
    """Shape only: ``accounts.services`` checks the amount against the asset and the balance."""

    asset = forms.ModelChoiceField(queryset=Asset.objects.order_by("symbol"))
    amount = forms.DecimalField(help_text="In units of the asset, e.g. 0.5")
    note = forms.CharField(
        max_length=200, required=False, help_text="Kept on the ledger entries, e.g. the bank or chain reference."
    )


def can_move_money(request: HttpRequest) -> bool:
    """Deposits and withdrawals add ledger entries: operators with that permission may post them."""
    return request.user.has_perm("accounts.add_ledgerentry")


@admin.register(User)
class ExchangeUserAdmin(UserAdmin):
    list_display = ("username", "email", "kind", "is_staff", "is_active", "date_joined")
    list_filter = ("kind", "is_staff", "is_active")
    fieldsets = (*UserAdmin.fieldsets, ("Exchange", {"fields": ("kind",)}))
    inlines = (BalanceInline,)
    actions = ("cancel_all_orders",)
    change_form_template = "admin/accounts/user/change_form.html"

    def get_readonly_fields(self, request, obj=None):
        # A customer never becomes a system account (fees, outside world), nor the reverse.
        return ("kind",) if obj is not None else ()

    def get_urls(self):
        money = [
            path("<int:user_id>/deposit/", self.admin_site.admin_view(self.deposit_view), name="accounts_user_deposit"),
            path(
                "<int:user_id>/withdraw/", self.admin_site.admin_view(self.withdraw_view), name="accounts_user_withdraw"
            ),
        ]
        return money + super().get_urls()

    def deposit_view(self, request: HttpRequest, user_id: int) -> HttpResponse:
        return self._money_view(request, user_id, action="deposit")

    def withdraw_view(self, request: HttpRequest, user_id: int) -> HttpResponse:
        return self._money_view(request, user_id, action="withdraw")

    def _money_view(self, request: HttpRequest, user_id: int, *, action: str) -> HttpResponse:
        if not can_move_money(request):
            raise PermissionDenied
        user = get_object_or_404(User, pk=user_id, kind=User.Kind.CUSTOMER)
        form = MoneyMovementForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            asset, amount, note = (form.cleaned_data[name] for name in ("asset", "amount", "note"))
            move = services.deposit if action == "deposit" else services.withdraw
            try:
                move(user=user, asset=asset, amount=amount, note=note)
            except ApplicationError as refusal:
                form.add_error(None, f"{refusal.message} ({refusal.code})")
            else:
                done = "Deposited" if action == "deposit" else "Withdrew"
                text = f"{done} {plain(amount)} {asset.symbol} {'to' if action == 'deposit' else 'from'} {user}."
                self.log_change(request, user, text)
                self.message_user(request, text, messages.SUCCESS)
                return redirect(reverse("admin:accounts_user_change", args=[user.pk]))
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "original": user,
            "form": form,
            "action": action,
            "title": f"{action.capitalize()} for {user}",
            "balances": Balance.objects.filter(user=user).select_related("asset").order_by("asset__symbol"),
        }
        return TemplateResponse(request, "admin/accounts/user/money_movement.html", context)

    def render_change_form(self, request, context, *args, **kwargs):
        context["can_move_money"] = can_move_money(request)
        return super().render_change_form(request, context, *args, **kwargs)

    def has_cancel_orders_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("orders.change_order")

    @admin.action(description="Cancel all live orders of the selected users", permissions=["cancel_orders"])
    def cancel_all_orders(self, request: HttpRequest, queryset) -> None:
        total = sum(len(request_cancel_all_by_operator(user=user)) for user in queryset)
        self.message_user(request, f"Cancel requested for {total} live order(s); the engine releases their funds.")


@admin.register(Asset)
class AssetAdmin(admin.ModelAdmin):
    list_display = ("symbol", "name", "precision")
    search_fields = ("symbol", "name")

    def get_readonly_fields(self, request, obj=None):
        # Amounts already held are stored at the precision the asset had: it never changes.
        return ("symbol", "precision") if obj is not None else ()

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Balance)
class BalanceAdmin(ReadOnlyAdmin):
    list_display = ("user", "asset", "available", "locked")
    list_filter = ("asset",)
    list_select_related = ("user", "asset")
    search_fields = ("user__username",)


@admin.register(LedgerEntry)
class LedgerEntryAdmin(ReadOnlyAdmin):
    list_display = ("id", "created_at", "user", "asset", "bucket", "amount", "reason", "order_id", "trade_id", "note")
    list_filter = ("reason", "asset", "bucket")
    list_select_related = ("user", "asset")
    search_fields = ("user__username", "note")
    date_hierarchy = "created_at"


@admin.register(ApiKey)
class ApiKeyAdmin(ReadOnlyAdmin):
    list_display = ("user", "label", "key", "scopes", "ip_allowlist", "created_at", "revoked_at")
    list_select_related = ("user",)
    search_fields = ("user__username", "label", "key")
    exclude = ("secret_encrypted",)


@admin.register(TwoFactorDevice)
class TwoFactorDeviceAdmin(ReadOnlyAdmin):
    """A user who lost their authenticator: an operator deletes the device (after checking who asks)."""

    list_display = ("user", "confirmed_at", "created_at", "recovery_codes_left")
    list_select_related = ("user",)
    search_fields = ("user__username",)
    exclude = ("secret_encrypted",)

    def get_queryset(self, request):
        unused = Count("recovery_codes", filter=Q(recovery_codes__used_at__isnull=True))
        return super().get_queryset(request).annotate(recovery_left=unused)

    @admin.display(description="recovery codes left", ordering="recovery_left")
    def recovery_codes_left(self, device: TwoFactorDevice) -> int:
        """Deleting the device deletes its recovery codes too."""
        return device.recovery_left

    def has_delete_permission(self, request, obj=None) -> bool:
        return request.user.is_superuser
