"""Users, assets, balances and the double-entry ledger.

Money invariants the database itself holds: no negative available or locked
amount, one balance row per (user, asset).  Everything that changes a balance
lives in ``accounts.services`` and writes ``LedgerEntry`` rows in the same
transaction, so each balance equals the sum of its entries.
"""

from __future__ import annotations

from django.contrib.auth.models import AbstractUser
from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.db.models import Q

from exchange_site.amounts import plain

AMOUNT = {"max_digits": 36, "decimal_places": 18}


class User(AbstractUser):
    """A trader, or one of the system accounts that stand for the outside world and fees."""

    class Kind(models.TextChoices):
        CUSTOMER = "customer", "Customer"
        FEES = "fees", "Fee account"
        EXTERNAL = "external", "Outside world (deposits and withdrawals)"

    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.CUSTOMER)

    class Meta:
        constraints = [
            # One fee account and one outside-world account.
            models.UniqueConstraint(fields=["kind"], condition=~Q(kind="customer"), name="one_user_per_system_kind"),
        ]


class Asset(models.Model):
    """Something that can be held and traded, with the number of decimals it is counted in."""

    symbol = models.CharField(max_length=16, unique=True)
    name = models.CharField(max_length=64)
    precision = models.PositiveSmallIntegerField(help_text="Decimals an amount of this asset may have (0-18).")

    class Meta:
        ordering = ["symbol"]
        constraints = [models.CheckConstraint(condition=Q(precision__lte=18), name="asset_precision_at_most_18")]

    def __str__(self) -> str:
        return self.symbol


class Balance(models.Model):
    """What a user holds of one asset: free to use (available) and held for open orders (locked)."""

    user = models.ForeignKey(User, on_delete=models.PROTECT, related_name="balances")
    asset = models.ForeignKey(Asset, on_delete=models.PROTECT, related_name="balances")
    available = models.DecimalField(default=0, **AMOUNT)
    locked = models.DecimalField(default=0, **AMOUNT)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "asset"], name="one_balance_per_user_asset"),
            models.CheckConstraint(condition=Q(available__gte=0), name="balance_available_not_negative"),
            models.CheckConstraint(condition=Q(locked__gte=0), name="balance_locked_not_negative"),
        ]

    def __str__(self) -> str:
        return f"{self.user} {self.asset}: {plain(self.available)} (+{plain(self.locked)} locked)"


class LedgerEntry(models.Model):
    """One signed change to one bucket of one balance.

    Entries come in movements that sum to zero per asset: a deposit credits the
    user and debits the outside-world account; a lock moves available to locked;
    a trade debits the payers' locked funds and credits the receivers and the
    fee account.  The outside-world account has no balance row: its entries
    alone say what came in and went out.
    """

    class Bucket(models.TextChoices):
        AVAILABLE = "available"
        LOCKED = "locked"

    class Reason(models.TextChoices):
        DEPOSIT = "deposit"
        WITHDRAWAL = "withdrawal"
        ORDER_LOCK = "order_lock"
        ORDER_UNLOCK = "order_unlock"
        TRADE = "trade"
        FEE = "fee"

    created_at = models.DateTimeField(db_default=models.functions.Now())
    user = models.ForeignKey(User, on_delete=models.PROTECT, related_name="ledger_entries")
    asset = models.ForeignKey(Asset, on_delete=models.PROTECT, related_name="+")
    bucket = models.CharField(max_length=9, choices=Bucket.choices)
    amount = models.DecimalField(**AMOUNT)
    reason = models.CharField(max_length=16, choices=Reason.choices)
    order = models.ForeignKey("orders.Order", null=True, blank=True, on_delete=models.PROTECT, related_name="+")
    trade_id = models.BigIntegerField(null=True, blank=True, help_text="The market's trade id (with order's market).")
    note = models.CharField(max_length=200, blank=True, default="")

    class Meta:
        verbose_name_plural = "ledger entries"
        indexes = [models.Index(fields=["user", "asset", "-id"], name="ledger_user_asset_idx")]

    def __str__(self) -> str:
        return f"{self.reason} {self.amount} {self.asset} ({self.bucket}) for {self.user}"


class ApiScope(models.TextChoices):
    """What an API key may do: ``read`` (GET), ``trade`` (place and cancel orders), ``withdraw`` (pay out)."""

    READ = "read", "Read balances, orders and trades"
    TRADE = "trade", "Place and cancel orders"
    WITHDRAW = "withdraw", "Withdraw funds (needs an IP allowlist and two-factor authentication)"


def default_api_scopes() -> list[str]:
    """Keys made before scopes existed, the demo's and the market maker's: read and trade, never withdraw."""
    return [ApiScope.READ.value, ApiScope.TRADE.value]


class ApiKey(models.Model):
    """A key a bot signs its requests with (HMAC-SHA256); the secret is shown once and stored encrypted.

    ``ip_allowlist`` holds networks in CIDR form ("203.0.113.7/32"); when it is
    not empty, every request signed with the key must come from one of them.
    A key with the ``withdraw`` scope must have one (a database constraint).
    """

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="api_keys")
    label = models.CharField(max_length=64, blank=True, default="")
    key = models.CharField(max_length=64, unique=True)
    secret_encrypted = models.BinaryField()
    scopes = ArrayField(models.CharField(max_length=16, choices=ApiScope.choices), default=default_api_scopes)
    ip_allowlist = ArrayField(models.CharField(max_length=64), default=list, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(
                condition=~Q(scopes__contains=[ApiScope.WITHDRAW.value]) | Q(ip_allowlist__len__gt=0),
                name="api_key_withdraw_needs_ip_allowlist",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.label or 'API key'} ({self.key[:8]}...)"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None

    def has_scope(self, scope: str) -> bool:
        return scope in self.scopes


class TwoFactorDevice(models.Model):
    """A user's TOTP authenticator (RFC 6238, 30 s steps, 6 digits); the secret is stored encrypted.

    Unconfirmed until the user proves it with a code; only a confirmed device
    guards the login.  ``last_step`` is the time step of the last code accepted,
    so a code is good once: an observed code cannot be replayed.
    """

    user = models.OneToOneField(User, on_delete=models.CASCADE, related_name="two_factor")
    secret_encrypted = models.BinaryField()
    confirmed_at = models.DateTimeField(null=True, blank=True)
    last_step = models.BigIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"TOTP for {self.user} ({'on' if self.confirmed_at else 'pending'})"


class RecoveryCode(models.Model):
    """One single-use code that stands in for the authenticator app at the login's second step.

    Ten are made when two-factor authentication is confirmed and shown once;
    only a keyed hash is stored (HMAC-SHA256 with a key derived from
    SECRET_KEY), so a copy of the database alone neither shows nor lets anyone
    brute-force them.  ``used_at`` is set by one atomic UPDATE, so a code works
    once however many requests race.  They go with the device (cascade).
    """

    device = models.ForeignKey(TwoFactorDevice, on_delete=models.CASCADE, related_name="recovery_codes")
    code_hash = models.CharField(max_length=64)
    used_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["device", "code_hash"], name="recovery_code_unique_per_device")]

    def __str__(self) -> str:
        return f"recovery code of {self.device.user_id} ({'used' if self.used_at else 'unused'})"
