"""The hand-written order-body check agrees with the serializer that documents it in the schema."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rest_framework.exceptions import ValidationError

from exchange_site.errors import ApplicationError
from orders.api import PlaceOrderSerializer
from orders.parsing import FIELDS as PARSER_FIELDS
from orders.parsing import parse_place_order

values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 5),
    st.decimals(allow_nan=True, allow_infinity=True, places=3),
    st.sampled_from(["", " ", "buy", "SELL", "Limit", "limit_maker", "market", "gtc", "IOC", "fok", "none",
                     "expire_maker", "BTC_USDT", "1.5", "0.001", "1e3", "abc", "NaN", "-Infinity", "x" * 70,
                     "bad id!", "ok-id_1.2:3"]),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=2), st.integers(), max_size=1),
)  # fmt: skip
FIELDS = [
    "market",
    "side",
    "type",
    "quantity",
    "price",
    "quote_quantity",
    "time_in_force",
    "stp_mode",
    "client_order_id",
]
bodies = st.dictionaries(st.sampled_from(FIELDS), values, max_size=len(FIELDS))


def serializer_outcome(body):
    serializer = PlaceOrderSerializer(data=body)
    if serializer.is_valid():
        data = dict(serializer.validated_data)
        return "ok", data.pop("market"), {k: v for k, v in data.items() if v is not None}
    return "error", {field: [str(m) for m in messages] for field, messages in serializer.errors.items()}


def parser_outcome(body):
    try:
        symbol, request = parse_place_order(body)
    except ValidationError as error:
        return "error", {field: [str(m) for m in messages] for field, messages in error.detail.items()}
    fields = {k: getattr(request, k) for k in request.__dataclass_fields__}
    return "ok", symbol, {k: v for k, v in fields.items() if v is not None}


@settings(max_examples=400, deadline=None)
@given(body=bodies)
def test_the_parser_accepts_and_refuses_exactly_like_the_serializer(body):
    assert parser_outcome(body) == serializer_outcome(body)


@pytest.mark.parametrize(
    "body",
    [
        {"market": "BTC_USDT", "side": "BUY", "type": "limit", "price": "100.5", "quantity": Decimal("0.1")},
        {"market": " btc_usdt ", "side": "sell", "type": "market", "quantity": 3, "client_order_id": "abc"},
        {},
        [],
        {"market": "BTC_USDT", "side": "buy", "type": "limit", "price": "NaN", "quantity": "1e999999"},
    ],
    ids=["limit", "market", "empty", "list", "bad-amounts"],
)
def test_examples_agree(body):
    if isinstance(body, list):
        with pytest.raises(ValidationError):
            parse_place_order(body)
        return
    assert parser_outcome(body) == serializer_outcome(body)


def test_the_parser_knows_exactly_the_serializers_fields():
    assert set(PARSER_FIELDS) == set(PlaceOrderSerializer().fields)


@pytest.mark.parametrize("field", ["user", "user_id", "status", "filled", "filled_quantity", "fee", "id", "created_at"])
def test_a_field_the_server_owns_is_refused_as_unknown(field):
    body = {"market": "BTC_USDT", "side": "buy", "type": "limit", "price": "1", "quantity": "1", field: 1}
    with pytest.raises(ApplicationError) as refused:
        parse_place_order(body)
    assert refused.value.code == "unknown_field"
    assert refused.value.details["fields"] == [field]
    assert repr(field) in refused.value.message
