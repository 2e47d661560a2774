from django.contrib import admin

from accounts.admin import ReadOnlyAdmin
from orders.models import Order, Trade


@admin.register(Order)
class OrderAdmin(ReadOnlyAdmin):
    list_display = ("id", "user", "market", "side", "type", "price", "quantity", "status", "filled_quantity")
    list_filter = ("status", "market", "side", "type")
    search_fields = ("user__username", "client_order_id")


@admin.register(Trade)
class TradeAdmin(ReadOnlyAdmin):
    list_display = ("market", "trade_id", "price", "quantity", "taker_side", "buyer", "seller", "executed_at")
    list_filter = ("market",)
