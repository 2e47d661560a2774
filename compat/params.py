"""Binance request parameters: read from the query string and the form body, checked as Binance checks them.

Binance takes parameters in either place (the query string wins when both
have one); a parameter sent twice in one place is refused.  Numbers travel
as text and become ``Decimal`` here, never ``float``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from decimal import Decimal
from urllib.parse import parse_qsl

from rest_framework.request import Request

from compat.errors import DECIMAL_PATTERN, INTEGER_PATTERN, BinanceError, illegal, invalid_value, mandatory

Params = dict[str, str]


def parse_pairs(raw: str) -> Params:
    """``a=1&b=2`` as a dict; a name given twice is refused (``-1101``)."""
    params: Params = {}
    try:
        pairs = parse_qsl(raw, keep_blank_values=True, strict_parsing=False, max_num_fields=200)
    except ValueError:
        raise BinanceError(-1101, "Too many parameters; the limit is 200.") from None
    for name, value in pairs:
        if name in params:
            raise BinanceError(-1101, f"Duplicate values for parameter '{name}'.")
        params[name] = value
    return params


def request_params(request: Request) -> Params:
    """Every parameter of ``request``: the form body's, then the query string's on top."""
    query = request._request.META.get("QUERY_STRING", "")
    body = request._request.body.decode("utf-8", errors="replace") if request._request.body else ""
    return {**parse_pairs(body), **parse_pairs(query)}


def text(params: Params, name: str, *, required: bool = False) -> str | None:
    value = params.get(name)
    if value is None or value == "":
        if required:
            raise mandatory(name)
        return None
    return value


def decimal(params: Params, name: str, *, required: bool = False) -> Decimal | None:
    value = text(params, name, required=required)
    if value is None:
        return None
    head, _, tail = value.partition(".")
    if not (head.isascii() and head.isdigit() and len(head) <= 20) or (
        "." in value and not (tail.isascii() and tail.isdigit() and len(tail) <= 20)
    ):
        raise illegal(name, DECIMAL_PATTERN)
    return Decimal(value)


def integer(
    params: Params, name: str, *, required: bool = False, minimum: int | None = None, maximum: int | None = None
) -> int | None:
    value = text(params, name, required=required)
    if value is None:
        return None
    if not (value.isascii() and value.isdigit() and len(value) <= 20):
        raise illegal(name, INTEGER_PATTERN)
    number = int(value)
    if (minimum is not None and number < minimum) or (maximum is not None and number > maximum):
        raise invalid_value(name)
    return number


def choice(
    params: Params, name: str, choices: Iterable[str], *, error: BinanceError, required: bool = False
) -> str | None:
    value = text(params, name, required=required)
    if value is None:
        return None
    if value.upper() not in choices:
        raise error
    return value.upper()


def symbol_list(params: Params) -> list[str] | None:
    """``symbols=["BTCUSDT","ETHUSDT"]`` (a JSON array, as Binance takes it), or None when absent."""
    raw = text(params, "symbols")
    if raw is None:
        return None
    try:
        symbols = json.loads(raw)
    except ValueError:
        raise invalid_value("symbols") from None
    if not isinstance(symbols, list) or not symbols or not all(isinstance(s, str) and s for s in symbols):
        raise invalid_value("symbols")
    return symbols
