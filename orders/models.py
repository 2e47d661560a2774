"""Orders and trades, the rows the engine reads and settles."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import F, Q

from accounts.models import AMOUNT
from markets.models import Market


class Order(models.Model):
    """A user's instruction to buy or sell, from placement to its one terminal state.

    ``locked_amount`` is what is held for this order right now (quote for a buy,
    base for a sell); the sum over a user's live orders equals their locked
    balance, and it is released to zero when the order ends.
    """

    class Side(models.TextChoices):
        BUY = "buy"
        SELL = "sell"

    class Type(models.TextChoices):
        LIMIT = "limit"
        LIMIT_MAKER = "limit_maker", "Limit maker (post-only)"
        MARKET = "market"

    class TimeInForce(models.TextChoices):
        GTC = "gtc", "Good till cancelled"
        IOC = "ioc", "Immediate or cancel"
        FOK = "fok", "Fill or kill"

    class SelfTradePrevention(models.TextChoices):
        NONE = "none"
        EXPIRE_TAKER = "expire_taker"
        EXPIRE_MAKER = "expire_maker"
        EXPIRE_BOTH = "expire_both"

    class Status(models.TextChoices):
        PENDING = "pending"
        OPEN = "open"
        PARTIALLY_FILLED = "partially_filled"
        FILLED = "filled"
        CANCELLED = "cancelled"
        EXPIRED = "expired"
        REJECTED = "rejected"

    LIVE_STATUSES = (Status.PENDING, Status.OPEN, Status.PARTIALLY_FILLED)
    TERMINAL_STATUSES = (Status.FILLED, Status.CANCELLED, Status.EXPIRED, Status.REJECTED)

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="orders")
    market = models.ForeignKey(Market, on_delete=models.PROTECT, related_name="orders")
    client_order_id = models.CharField(max_length=64)
    side = models.CharField(max_length=4, choices=Side.choices)
    type = models.CharField(max_length=12, choices=Type.choices)
    time_in_force = models.CharField(max_length=3, choices=TimeInForce.choices, default=TimeInForce.GTC)
    stp_mode = models.CharField(max_length=12, choices=SelfTradePrevention.choices, default=SelfTradePrevention.NONE)
    price = models.DecimalField(null=True, blank=True, **AMOUNT)
    quantity = models.DecimalField(null=True, blank=True, **AMOUNT)
    quote_quantity = models.DecimalField(
        null=True, blank=True, help_text="Market buy by quote: spend at most this much.", **AMOUNT
    )
    protection_price = models.DecimalField(
        null=True, blank=True, help_text="Market buy by quantity: never pay more than this per unit.", **AMOUNT
    )
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    filled_quantity = models.DecimalField(default=0, **AMOUNT)
    filled_quote = models.DecimalField(default=0, **AMOUNT)
    locked_amount = models.DecimalField(default=0, **AMOUNT)
    book_seq = models.BigIntegerField(null=True, blank=True, help_text="Time priority in the book (engine's).")
    end_reason = models.CharField(max_length=32, blank=True, default="")
    cancel_requested_at = models.DateTimeField(null=True, blank=True)
    processed_at = models.DateTimeField(
        null=True, blank=True, help_text="When the engine's batch that first handled this order was written."
    )
    created_at = models.DateTimeField(db_default=models.functions.Now())
    updated_at = models.DateTimeField(db_default=models.functions.Now())

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "client_order_id"], name="client_order_id_unique_per_user"),
            models.CheckConstraint(condition=Q(filled_quantity__gte=0), name="order_filled_not_negative"),
            models.CheckConstraint(
                condition=Q(quantity__isnull=True) | Q(filled_quantity__lte=F("quantity")),
                name="order_filled_at_most_quantity",
            ),
            models.CheckConstraint(condition=Q(locked_amount__gte=0), name="order_locked_not_negative"),
            models.CheckConstraint(
                condition=Q(quantity__gt=0) | Q(quote_quantity__gt=0), name="order_has_positive_size"
            ),
        ]
        indexes = [
            models.Index(fields=["user", "-id"], name="order_user_recent_idx"),
            models.Index(
                fields=["market", "status"],
                condition=Q(status__in=["pending", "open", "partially_filled"]),
                name="order_live_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.side} {self.quantity or self.quote_quantity} {self.market_id} {self.status}"

    @property
    def is_live(self) -> bool:
        return self.status in self.LIVE_STATUSES


class Trade(models.Model):
    """One match between a resting (maker) order and an incoming (taker) order.

    ``trade_id`` is the market's own counter, kept by the engine with its
    checkpoint, so replaying the same orders gives the same ids.
    """

    market = models.ForeignKey(Market, on_delete=models.PROTECT, related_name="trades")
    trade_id = models.BigIntegerField()
    price = models.DecimalField(**AMOUNT)
    quantity = models.DecimalField(**AMOUNT)
    quote_quantity = models.DecimalField(**AMOUNT)
    taker_side = models.CharField(max_length=4, choices=Order.Side.choices)
    buy_order = models.ForeignKey(Order, on_delete=models.PROTECT, related_name="+")
    sell_order = models.ForeignKey(Order, on_delete=models.PROTECT, related_name="+")
    buyer = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    seller = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    buyer_fee = models.DecimalField(**AMOUNT)
    seller_fee = models.DecimalField(**AMOUNT)
    executed_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["market", "trade_id"], name="trade_id_unique_per_market"),
        ]
        indexes = [
            models.Index(fields=["buyer", "-executed_at"], name="trade_buyer_idx"),
            models.Index(fields=["seller", "-executed_at"], name="trade_seller_idx"),
            models.Index(fields=["market", "-trade_id"], name="trade_market_recent_idx"),
            # Candles are recomputed from the trades of a market since a time (marketdata.services).
            models.Index(fields=["market", "executed_at"], name="trade_market_time_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.market_id}#{self.trade_id} {self.quantity}@{self.price}"


class OpenOrderCount(models.Model):
    """How many live orders (pending, open, partially filled) a user has in a market.

    Order entry adds one in the statement that inserts the order, the engine
    takes them off in the batch that ends the orders.  The cap is copied onto
    the row at each placement (from ``EXCHANGE["MAX_OPEN_ORDERS"]``), so the
    database itself refuses the order past it: the upsert takes the row's lock,
    and the CHECK makes the whole placement roll back (docs/decisions/010).
    """

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    market = models.ForeignKey(Market, on_delete=models.CASCADE, related_name="+")
    count = models.IntegerField(default=0)
    cap = models.IntegerField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "market"], name="open_order_count_unique"),
            models.CheckConstraint(condition=Q(count__gte=0), name="open_order_count_not_negative"),
            models.CheckConstraint(condition=Q(count__lte=F("cap")), name="open_order_count_within_cap"),
        ]

    def __str__(self) -> str:
        return f"{self.user_id}/{self.market_id}: {self.count} of {self.cap}"
