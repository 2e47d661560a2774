"""The market maker's configuration: ``settings.MARKET_MAKER`` (read from the environment), checked once.

Amounts arrive as strings and become ``Decimal`` here; a bad value stops the
bot at start with a message naming the setting, instead of quoting nonsense.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from markets.market_maker.quoting import LadderParams


class ConfigError(ValueError):
    """A setting the bot cannot work with; the message names it."""


@dataclass(frozen=True)
class MakerConfig:
    api_url: str
    ws_url: str
    api_key: str
    api_secret: str
    markets: tuple[str, ...]  # empty: every trading market the exchange lists
    ladder: LadderParams
    start_prices: dict[str, Decimal] = field(default_factory=dict)
    price_files: dict[str, str] = field(default_factory=dict)
    walk_step_bps: Decimal = Decimal(4)
    walk_band_pct: Decimal = Decimal(10)
    price_tolerance_bps: Decimal = Decimal(3)
    quantity_tolerance: Decimal = Decimal("0.5")
    take_probability: float = 0.1
    take_size_quote: Decimal = Decimal(200)
    cycle_s: float = 1.0
    resync_s: float = 30.0
    summary_s: float = 30.0
    cancel_on_exit: bool = True
    seed: int | None = None
    backoff_base_s: float = 0.5
    backoff_max_s: float = 30.0
    timeout_s: float = 5.0

    @classmethod
    def from_settings(
        cls, values: Mapping[str, Any], *, markets: tuple[str, ...] | None = None, credentials_file: Path | None = None
    ) -> MakerConfig:
        """Build from a ``MARKET_MAKER`` settings dict; ``markets`` (from the command line) wins over it.

        The API key and secret come from the settings (environment) when both
        are set, else from ``credentials_file`` (the demo seeding writes it).
        """
        key, secret = values.get("API_KEY") or "", values.get("API_SECRET") or ""
        if not (key and secret):
            key, secret = load_credentials(Path(values.get("CREDENTIALS_FILE") or credentials_file or ""))
        ladder = LadderParams(
            levels=_int(values, "LEVELS", minimum=1),
            spread_bps=_decimal(values, "SPREAD_BPS", positive=True),
            level_step_bps=_decimal(values, "LEVEL_STEP_BPS"),
            level_size_quote=_decimal(values, "LEVEL_SIZE_QUOTE", positive=True),
            max_inventory_quote=_decimal(values, "MAX_INVENTORY_QUOTE", positive=True),
            skew_bps=_decimal(values, "SKEW_BPS"),
            size_skew=_decimal(values, "SIZE_SKEW", at_most=Decimal(1)),
        )
        tolerance = _decimal(values, "PRICE_TOLERANCE_BPS")
        if tolerance * 2 >= ladder.spread_bps:
            # A kept bid may then sit up to the tolerance above its new price: with half
            # the spread or more it could reach our own new asks.
            raise ConfigError(
                f"MARKET_MAKER_PRICE_TOLERANCE_BPS ({tolerance}) must be under half of "
                f"MARKET_MAKER_SPREAD_BPS ({ladder.spread_bps})."
            )
        probability = float(_decimal(values, "TAKE_PROBABILITY", at_most=Decimal(1)))
        wanted = markets if markets is not None else tuple(values.get("MARKETS") or ())
        band = _decimal(values, "WALK_BAND_PCT", positive=True)
        if band >= 100:
            raise ConfigError(f"MARKET_MAKER_WALK_BAND_PCT must be under 100, not {band}.")
        return cls(
            api_url=_url(values, "API_URL", ("http", "https")),
            ws_url=_url(values, "WS_URL", ("ws", "wss")),
            api_key=key,
            api_secret=secret,
            markets=tuple(s.strip().upper() for s in wanted if s.strip()),
            ladder=ladder,
            start_prices={
                symbol.upper(): _decimal({"START_PRICES": price}, "START_PRICES", positive=True)
                for symbol, price in (values.get("START_PRICES") or {}).items()
            },
            price_files={symbol.upper(): str(path) for symbol, path in (values.get("PRICE_FILES") or {}).items()},
            walk_step_bps=_decimal(values, "WALK_STEP_BPS"),
            walk_band_pct=band,
            price_tolerance_bps=tolerance,
            quantity_tolerance=_decimal(values, "QUANTITY_TOLERANCE", at_most=Decimal(1)),
            take_probability=probability,
            take_size_quote=_decimal(values, "TAKE_SIZE_QUOTE", positive=True),
            cycle_s=_seconds(values, "CYCLE_S"),
            resync_s=_seconds(values, "RESYNC_S"),
            summary_s=_seconds(values, "SUMMARY_S"),
            cancel_on_exit=bool(values.get("CANCEL_ON_EXIT", True)),
            seed=None if values.get("SEED") in (None, "") else _int(values, "SEED", minimum=0),
            backoff_base_s=_seconds(values, "BACKOFF_BASE_S"),
            backoff_max_s=_seconds(values, "BACKOFF_MAX_S"),
            timeout_s=_seconds(values, "TIMEOUT_S"),
        )


def load_credentials(path: Path) -> tuple[str, str]:
    """``(key, secret)`` from a credentials file like the demo seeding's ``{"key": ..., "secret": ...}``."""
    try:
        saved = json.loads(path.read_text())
        return str(saved["key"]), str(saved["secret"])
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise ConfigError(
            f"No API key for the market maker: set MARKET_MAKER_API_KEY and MARKET_MAKER_API_SECRET, or run "
            f"`manage.py seed_demo` to create {path} ({error})."
        ) from None


def _name(key: str) -> str:
    return f"MARKET_MAKER_{key}"


def _decimal(values: Mapping[str, Any], key: str, *, positive: bool = False, at_most: Decimal | None = None) -> Decimal:
    raw = values.get(key)
    try:
        value = Decimal(str(raw).strip())
    except InvalidOperation:
        raise ConfigError(f"{_name(key)} must be a number, not {raw!r}.") from None
    if not value.is_finite() or value < 0 or (positive and value == 0):
        raise ConfigError(f"{_name(key)} must be a {'positive' if positive else 'non-negative'} number, not {raw!r}.")
    if at_most is not None and value > at_most:
        raise ConfigError(f"{_name(key)} must be at most {at_most}, not {raw!r}.")
    return value


def _int(values: Mapping[str, Any], key: str, *, minimum: int) -> int:
    raw = values.get(key)
    try:
        value = int(str(raw).strip())
    except ValueError:
        raise ConfigError(f"{_name(key)} must be a whole number, not {raw!r}.") from None
    if value < minimum:
        raise ConfigError(f"{_name(key)} must be at least {minimum}, not {value}.")
    return value


def _seconds(values: Mapping[str, Any], key: str) -> float:
    return float(_decimal(values, key, positive=True))


def _url(values: Mapping[str, Any], key: str, schemes: tuple[str, ...]) -> str:
    raw = str(values.get(key) or "").rstrip("/")
    parts = urlsplit(raw)
    if parts.scheme not in schemes or not parts.netloc:
        raise ConfigError(f"{_name(key)} must be a {' or '.join(schemes)} URL, not {raw!r}.")
    return raw
