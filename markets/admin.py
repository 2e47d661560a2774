from django.contrib import admin

from markets.models import Market


@admin.register(Market)
class MarketAdmin(admin.ModelAdmin):
    list_display = ("symbol", "status", "tick_size", "lot_size", "min_notional", "maker_fee_rate", "taker_fee_rate")
    list_filter = ("status",)
