"""Markets: which asset trades against which, and the filters every order must pass."""

from __future__ import annotations

from decimal import Decimal

from django.db import models
from django.db.models import F, Q

from accounts.models import AMOUNT, Asset

RATE = {"max_digits": 8, "decimal_places": 6}


class Market(models.Model):
    """A spot market ``BASE_QUOTE``: prices in quote per one base, quantities in base."""

    class Status(models.TextChoices):
        TRADING = "trading", "Trading"
        # Placing refused, cancels served: an operator winds a market down.
        CANCEL_ONLY = "cancel_only", "Cancel only"
        # Placing refused and the engine pauses the market: commands wait in its stream.
        HALTED = "halted", "Halted"

    symbol = models.CharField(max_length=32, unique=True, help_text="BASE_QUOTE, e.g. BTC_USDT")
    base = models.ForeignKey(Asset, on_delete=models.PROTECT, related_name="base_markets")
    quote = models.ForeignKey(Asset, on_delete=models.PROTECT, related_name="quote_markets")
    tick_size = models.DecimalField(help_text="Every price is a multiple of this (quote).", **AMOUNT)
    lot_size = models.DecimalField(help_text="Every quantity is a multiple of this (base).", **AMOUNT)
    min_notional = models.DecimalField(default=0, help_text="Smallest price x quantity accepted (quote).", **AMOUNT)
    max_quantity = models.DecimalField(
        default=Decimal("1000000000"), help_text="Largest quantity one order may have (base).", **AMOUNT
    )
    max_notional = models.DecimalField(
        null=True, blank=True, help_text="Largest price x quantity one order may have (quote); empty: no cap.", **AMOUNT
    )
    maker_fee_rate = models.DecimalField(default=Decimal("0.001"), **RATE)
    taker_fee_rate = models.DecimalField(default=Decimal("0.001"), **RATE)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.TRADING)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["symbol"]
        constraints = [
            models.CheckConstraint(condition=Q(tick_size__gt=0), name="market_tick_positive"),
            models.CheckConstraint(condition=Q(lot_size__gt=0), name="market_lot_positive"),
            models.CheckConstraint(condition=Q(min_notional__gte=0), name="market_min_notional_not_negative"),
            models.CheckConstraint(condition=Q(max_quantity__gt=0), name="market_max_quantity_positive"),
            models.CheckConstraint(
                condition=Q(max_notional__isnull=True) | Q(max_notional__gt=0), name="market_max_notional_positive"
            ),
            models.CheckConstraint(
                condition=Q(maker_fee_rate__gte=0, maker_fee_rate__lt=1, taker_fee_rate__gte=0, taker_fee_rate__lt=1),
                name="market_fee_rates_in_range",
            ),
            models.CheckConstraint(condition=~Q(base=F("quote")), name="market_base_differs_from_quote"),
        ]

    def __str__(self) -> str:
        return self.symbol

    @property
    def is_trading(self) -> bool:
        return self.status == self.Status.TRADING

    def clean(self) -> None:
        """The admin's and forms' check: the filters must keep every amount exact (``markets.services``)."""
        from django.core.exceptions import ValidationError

        from exchange_site.errors import ApplicationError
        from markets.services import validate_filters

        if self.base_id is None or self.quote_id is None or self.tick_size is None or self.lot_size is None:
            return
        try:
            validate_filters(base=self.base, quote=self.quote, tick_size=self.tick_size, lot_size=self.lot_size)
        except ApplicationError as refusal:
            raise ValidationError(refusal.message, code=refusal.code) from None
