"""Serializer fields for money: decimal strings in and out, never floats."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from exchange_site.amounts import plain_or_none


class AmountError(ValueError):
    def __init__(self, kind: str) -> None:
        super().__init__(AmountField.default_error_messages[kind])
        self.kind = kind


def parse_amount(data: object) -> Decimal:
    """A finite Decimal from a JSON string or number (already a Decimal: never a float); AmountError if not."""
    if isinstance(data, bool) or not isinstance(data, (str, int, Decimal)):
        raise AmountError("invalid")
    text = str(data).strip()
    if len(text) > 64:
        raise AmountError("too_long")
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise AmountError("invalid") from None
    if not value.is_finite():
        raise AmountError("not_finite")
    return value


@extend_schema_field({"type": "string", "format": "decimal", "example": "0.015"})
class AmountField(serializers.Field):
    """A decimal amount: accepted as a JSON string or number (parsed as Decimal), rendered as a plain string.

    Range and step checks are the services' (they know the market's filters);
    this field only makes sure the value is a finite decimal.
    """

    default_error_messages = {
        "invalid": 'A valid number is required, as a string such as "0.015".',
        "not_finite": "NaN and infinite values are not amounts.",
        "too_long": "Too many digits.",
    }

    def to_internal_value(self, data) -> Decimal:
        try:
            return parse_amount(data)
        except AmountError as error:
            self.fail(error.kind)

    def to_representation(self, value: Decimal | None) -> str | None:
        return plain_or_none(value)
