"""Demo data for a fresh exchange: assets, markets, an admin, funded traders and a market maker.

Idempotent: run it on every start; it only creates what is missing and funds
each demo account once.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from django.conf import settings

from accounts import services as money
from accounts.models import ApiKey, Asset, LedgerEntry, User
from markets.models import Market
from markets.services import market_create

SEED_NOTE = "demo seed"
ASSETS = [("BTC", "Bitcoin", 8), ("ETH", "Ether", 8), ("USDT", "Tether USD", 8)]
MARKETS = [
    # base, quote, tick, lot, min notional
    ("BTC", "USDT", "0.01", "0.00001", "5"),
    ("ETH", "USDT", "0.01", "0.0001", "5"),
]
TRADER_FUNDS = {"BTC": Decimal(10), "ETH": Decimal(100), "USDT": Decimal(1_000_000)}
MAKER_FUNDS = {"BTC": Decimal(100), "ETH": Decimal(1000), "USDT": Decimal(10_000_000)}


@dataclass(frozen=True)
class DemoLogin:
    username: str
    password: str
    role: str


DEMO_LOGINS = [
    DemoLogin("admin", "admin", "operator (Django admin)"),
    DemoLogin("alice", "alice", "trader"),
    DemoLogin("bob", "bob", "trader"),
]
MARKET_MAKER = "marketmaker"


def credentials_path() -> Path:
    return Path(os.environ.get("EXCHANGE_DATA_DIR", settings.BASE_DIR / ".data")) / "demo_credentials.json"


def seed_demo() -> dict[str, object]:
    """Create what is missing; return the demo logins and the market maker's API key."""
    assets = {}
    for symbol, name, precision in ASSETS:
        assets[symbol], _ = Asset.objects.get_or_create(symbol=symbol, defaults={"name": name, "precision": precision})
    for base, quote, tick, lot, min_notional in MARKETS:
        if not Market.objects.filter(symbol=f"{base}_{quote}").exists():
            market_create(
                base=assets[base],
                quote=assets[quote],
                tick_size=Decimal(tick),
                lot_size=Decimal(lot),
                min_notional=Decimal(min_notional),
                maker_fee_rate=Decimal("0.0008"),
                taker_fee_rate=Decimal("0.001"),
            )
    for login in DEMO_LOGINS:
        user = _user(login.username, login.password, staff=login.username == "admin")
        if login.role == "trader":
            _fund_once(user, assets, TRADER_FUNDS)
    maker = _user(MARKET_MAKER, None, staff=False)
    _fund_once(maker, assets, MAKER_FUNDS)
    return {
        "logins": [login.__dict__ for login in DEMO_LOGINS],
        "market_maker": _market_maker_key(maker),
    }


def _user(username: str, password: str | None, *, staff: bool) -> User:
    user, created = User.objects.get_or_create(username=username)
    if created:
        if password:
            user.set_password(password)
        else:
            user.set_unusable_password()
        user.is_staff = user.is_superuser = staff
        user.save()
    return user


def _fund_once(user: User, assets: dict[str, Asset], amounts: dict[str, Decimal]) -> None:
    for symbol, amount in amounts.items():
        seeded = LedgerEntry.objects.filter(
            user=user, asset=assets[symbol], reason=LedgerEntry.Reason.DEPOSIT, note=SEED_NOTE
        ).exists()
        if not seeded:
            money.deposit(user=user, asset=assets[symbol], amount=amount, note=SEED_NOTE)


def _market_maker_key(maker: User) -> dict[str, str]:
    """The market maker's API key, kept in .data/ so its process can sign requests."""
    path = credentials_path()
    if path.exists():
        saved = json.loads(path.read_text())
        if ApiKey.objects.filter(user=maker, key=saved.get("key"), revoked_at__isnull=True).exists():
            return saved
    api_key, secret = money.api_key_create(user=maker, label="market-maker")
    saved = {"username": maker.username, "key": api_key.key, "secret": secret}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(saved, indent=2))
    path.chmod(0o600)
    return saved
