"""Operators' view of markets: create (filters checked), halt, resume, cancel every order.

Every write goes through a service (``markets.services``, ``orders.services``),
so the filters are validated once, the markets cache is refreshed, and order
cancels reach the engine, which releases their funds.  A market's fields are
read-only once it exists: the engine's book counts in its ticks and lots.
"""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import reverse

from accounts.models import Asset
from exchange_site.errors import ApplicationError
from markets.models import Market
from markets.services import market_create, market_set_status
from orders.services import request_cancel_all_by_operator


class MarketCreateForm(forms.Form):
    base = forms.ModelChoiceField(queryset=Asset.objects.order_by("symbol"), help_text="What is bought and sold.")
    quote = forms.ModelChoiceField(queryset=Asset.objects.order_by("symbol"), help_text="What prices are in.")
    tick_size = forms.DecimalField(help_text="Every price is a multiple of this (quote).")
    lot_size = forms.DecimalField(help_text="Every quantity is a multiple of this (base).")
    min_notional = forms.DecimalField(initial=0, help_text="Smallest price x quantity accepted (quote).")
    max_notional = forms.DecimalField(
        required=False, help_text="Largest price x quantity accepted (quote); empty for no cap."
    )
    maker_fee_rate = forms.DecimalField(initial="0.001", help_text="0.001 is 0.1%.")
    taker_fee_rate = forms.DecimalField(initial="0.001")


@admin.register(Market)
class MarketAdmin(admin.ModelAdmin):
    list_display = (
        "symbol", "status", "base", "quote", "tick_size", "lot_size", "min_notional", "max_notional", "maker_fee_rate",
        "taker_fee_rate", "created_at",
    )  # fmt: skip
    list_filter = ("status", "quote", "base")
    list_select_related = ("base", "quote")
    search_fields = ("symbol",)
    actions = ("halt", "cancel_only", "resume", "cancel_all_orders")

    def has_change_permission(self, request: HttpRequest, obj: Market | None = None) -> bool:
        # The list's actions need it; a market's own page is read-only (see the module docstring).
        return obj is None and super().has_change_permission(request)

    def has_delete_permission(self, request: HttpRequest, obj: Market | None = None) -> bool:
        return False

    def add_view(self, request: HttpRequest, form_url: str = "", extra_context=None) -> HttpResponse:
        """Create a market through ``market_create`` (which checks the filters fit the assets' precision)."""
        if not self.has_add_permission(request):
            raise PermissionDenied
        form = MarketCreateForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            try:
                market = market_create(**form.cleaned_data)
            except ApplicationError as refusal:
                form.add_error(None, f"{refusal.message} ({refusal.code})")
            else:
                self.log_addition(request, market, "Created through market_create.")
                self.message_user(request, f"Market {market.symbol} created.", messages.SUCCESS)
                return redirect(reverse("admin:markets_market_changelist"))
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "form": form,
            "title": "Add market",
        }
        return TemplateResponse(request, "admin/markets/market/add.html", context)

    @admin.action(
        description="Halt the selected markets (refuse new orders; the engine pauses them)", permissions=["change"]
    )
    def halt(self, request: HttpRequest, queryset) -> None:
        self._set_status(request, queryset, Market.Status.HALTED)

    @admin.action(description="Cancel-only mode for the selected markets (cancels only)", permissions=["change"])
    def cancel_only(self, request: HttpRequest, queryset) -> None:
        self._set_status(request, queryset, Market.Status.CANCEL_ONLY)

    @admin.action(description="Resume trading in the selected markets", permissions=["change"])
    def resume(self, request: HttpRequest, queryset) -> None:
        self._set_status(request, queryset, Market.Status.TRADING)

    def _set_status(self, request: HttpRequest, queryset, status: str) -> None:
        for market in queryset:
            market_set_status(market=market, status=status)
            self.log_change(request, market, f"Status set to {status}.")
        symbols = ", ".join(market.symbol for market in queryset)
        self.message_user(request, f"{symbols}: {Market.Status(status).label.lower()}.", messages.SUCCESS)

    def has_cancel_orders_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("orders.change_order")

    @admin.action(description="Cancel all live orders in the selected markets", permissions=["cancel_orders"])
    def cancel_all_orders(self, request: HttpRequest, queryset) -> None:
        total = sum(len(request_cancel_all_by_operator(market=market)) for market in queryset)
        self.message_user(request, f"Cancel requested for {total} live order(s); the engine releases their funds.")
