"""Decimal helpers that never round: formatting and counting decimals.

``Decimal.normalize()`` and ``quantize()`` work in the context's precision
(28 digits by default) and round or raise beyond it, which an 18-decimal asset
reaches at 10^10; these work on the digits themselves.
"""

from __future__ import annotations

import decimal
from decimal import Decimal

# Amounts are NUMERIC(36, 18) and products of two of them are formed in
# matching and validation: give arithmetic room for every digit.
MONEY_PRECISION = 80


def install_money_context() -> None:
    """Widen the decimal precision of this thread and of threads started from now on."""
    decimal.DefaultContext.prec = MONEY_PRECISION
    decimal.getcontext().prec = MONEY_PRECISION


def plain(value: Decimal | int) -> str:
    """``value`` as a plain decimal string without trailing zeros: 1.50 -> "1.5", 1E+2 -> "100"."""
    text = f"{Decimal(value):f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def plain_or_none(value: Decimal | int | None) -> str | None:
    return None if value is None else plain(value)


def decimal_places(value: Decimal) -> int:
    """How many decimals ``value`` really has (trailing zeros do not count)."""
    _, digits, exponent = value.as_tuple()
    if not isinstance(exponent, int) or not any(digits):
        return 0
    trailing = len(digits) - len("".join(map(str, digits)).rstrip("0"))
    return max(0, -(exponent + trailing))
