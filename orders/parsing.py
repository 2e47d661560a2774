"""The order-entry request body, checked by hand on the hot path.

``PlaceOrderSerializer`` (orders/api.py) documents the same contract in the
OpenAPI schema; instantiating it costs a deep copy of its fields per request,
which profiling showed as a large share of a placement.  This function checks
the same shape with the same error messages (a test keeps the two in step)
and raises DRF's ``ValidationError`` so errors reach clients in the one shape.

A field it does not know is refused (``unknown_field``) before anything else
is checked: a client that sends ``user``, ``status``, ``filled_quantity`` or
``fee`` (or misspells ``time_in_force``) learns at once that the field has no
effect, instead of trading on an order that silently differs from the one it
meant to send.  The serializer documents the known fields only.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

from rest_framework.exceptions import ValidationError

from exchange_site.errors import ApplicationError
from exchange_site.fields import AmountError, parse_amount
from orders.models import Order
from orders.services import OrderRequest

REQUIRED = "This field is required."
CLIENT_ORDER_ID = re.compile(r"^[A-Za-z0-9_.:\-]{1,64}$")
CLIENT_ORDER_ID_MESSAGE = "Use 1 to 64 letters, digits, or the characters _ . : -"
MARKET_MAX_LENGTH = 32
_CHOICES = {
    "side": frozenset(Order.Side.values),
    "type": frozenset(Order.Type.values),
    "time_in_force": frozenset(Order.TimeInForce.values),
    "stp_mode": frozenset(Order.SelfTradePrevention.values),
}
_DEFAULTS = {"time_in_force": Order.TimeInForce.GTC.value, "stp_mode": Order.SelfTradePrevention.NONE.value}
_AMOUNTS = ("quantity", "price", "quote_quantity")
FIELDS = ("market", *_CHOICES, *_AMOUNTS, "client_order_id")


def _as_text(value: Any) -> Any:
    """Numbers become text, as DRF's CharField takes them; anything else is left for the checks."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return value


def parse_place_order(data: Any) -> tuple[str, OrderRequest]:
    """``(market symbol, OrderRequest)`` from a request body, or ValidationError naming every bad field.

    ApplicationError ``unknown_field`` when the body carries a field that is not part of an order request.
    """
    if not isinstance(data, dict):
        raise ValidationError(
            {"non_field_errors": [f"Invalid data. Expected a dictionary, but got {type(data).__name__}."]}
        )
    unknown = sorted(str(name)[:64] for name in data if name not in FIELDS)[:10]  # bounded: names echo back
    if unknown:
        raise ApplicationError(
            f"Unknown field{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))}: an order request "
            f"takes only {', '.join(FIELDS)}; the server sets everything else.",
            code="unknown_field",
            details={"fields": unknown, "allowed": list(FIELDS)},
        )
    errors: dict[str, list[str]] = {}
    market = _as_text(data.get("market"))
    if market is None:
        errors["market"] = [REQUIRED if "market" not in data else "This field may not be null."]
    elif not isinstance(market, str) or not market.strip():
        errors["market"] = ["Not a valid string." if not isinstance(market, str) else "This field may not be blank."]
    elif len(market) > MARKET_MAX_LENGTH:
        errors["market"] = [f"Ensure this field has no more than {MARKET_MAX_LENGTH} characters."]
    choices: dict[str, str] = {}
    for name, allowed in _CHOICES.items():
        value = data.get(name, _DEFAULTS.get(name))
        if value is None:
            errors[name] = [REQUIRED if name not in data else "This field may not be null."]
            continue
        normalized = value.lower() if isinstance(value, str) else value
        if not isinstance(normalized, str) or normalized not in allowed:
            errors[name] = [f'"{normalized}" is not a valid choice.']
        else:
            choices[name] = normalized
    amounts: dict[str, Decimal | None] = {}
    for name in _AMOUNTS:
        value = data.get(name)
        if value is None:
            amounts[name] = None
            continue
        try:
            amounts[name] = parse_amount(value)
        except AmountError as error:
            errors[name] = [str(error)]
    client_order_id = _as_text(data.get("client_order_id"))
    if isinstance(client_order_id, str) and not client_order_id.strip():
        errors["client_order_id"] = ["This field may not be blank."]
    elif client_order_id is not None and (
        not isinstance(client_order_id, str) or not CLIENT_ORDER_ID.match(client_order_id)
    ):
        errors["client_order_id"] = [CLIENT_ORDER_ID_MESSAGE]
    if errors:
        raise ValidationError(errors)
    return market.strip(), OrderRequest(client_order_id=client_order_id, **choices, **amounts)
