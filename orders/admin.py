"""Operators' view of orders and trades: read-only, searchable, filterable.

Orders change only through the engine; an operator cancels them with the
"cancel all live orders" actions of the user and market pages.
"""

from django.contrib import admin

from accounts.admin import ReadOnlyAdmin
from orders.models import Order, Trade


@admin.register(Order)
class OrderAdmin(ReadOnlyAdmin):
    list_display = (
        "id", "created_at", "user", "market", "side", "type", "time_in_force", "price", "quantity",
        "filled_quantity", "status", "end_reason", "cancel_requested_at",
    )  # fmt: skip
    list_filter = ("status", "market", "side", "type", "time_in_force")
    list_select_related = ("user", "market")
    search_fields = ("=id", "user__username", "client_order_id")
    date_hierarchy = "created_at"


@admin.register(Trade)
class TradeAdmin(ReadOnlyAdmin):
    list_display = (
        "market", "trade_id", "executed_at", "price", "quantity", "quote_quantity", "taker_side", "buyer", "seller",
        "buyer_fee", "seller_fee",
    )  # fmt: skip
    list_filter = ("market", "taker_side")
    list_select_related = ("market", "buyer", "seller")
    search_fields = ("=trade_id", "buyer__username", "seller__username", "=buy_order__id", "=sell_order__id")
    date_hierarchy = "executed_at"
