"""Errors as Binance shapes them: ``{"code": -NNNN, "msg": "..."}`` with Binance's codes, messages and statuses.

Clients (CCXT and the official connectors) choose their exception class from
the code and, for some, the exact message: ``-2010`` with "Account has
insufficient balance for requested action." is CCXT's ``InsufficientFunds``,
``-2013`` its ``OrderNotFound``, ``-1121`` its ``BadSymbol``, ``-1022``/
``-2014``/``-2015`` its ``AuthenticationError``, ``-1021`` its ``InvalidNonce``,
a message naming ``PRICE_FILTER`` or ``LOT_SIZE`` its ``InvalidOrder``.  So the
messages below are Binance's, word for word, wherever Binance has one.
"""

from __future__ import annotations

from typing import Any

from rest_framework import exceptions, status
from rest_framework.response import Response

from exchange_site import outages
from exchange_site.errors import ApplicationError

DECIMAL_PATTERN = r"^([0-9]{1,20})(\.[0-9]{1,20})?$"
INTEGER_PATTERN = r"^[0-9]{1,20}$"

INSUFFICIENT_BALANCE = "Account has insufficient balance for requested action."
ORDER_DOES_NOT_EXIST = "Order does not exist."
UNKNOWN_ORDER = "Unknown order sent."
WOULD_TAKE = "Order would immediately match and take."


class BinanceError(exceptions.APIException):
    """A refusal in Binance's words; raised by the adapter, rendered by ``exception_handler``."""

    def __init__(self, code: int, msg: str, *, status: int = status.HTTP_400_BAD_REQUEST) -> None:
        super().__init__(msg)
        self.code = code
        self.msg = msg
        self.status_code = status

    def body(self) -> dict[str, Any]:
        return {"code": self.code, "msg": self.msg}


def invalid_symbol() -> BinanceError:
    return BinanceError(-1121, "Invalid symbol.")


def mandatory(name: str) -> BinanceError:
    return BinanceError(-1102, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed.")


def illegal(name: str, pattern: str) -> BinanceError:
    return BinanceError(-1100, f"Illegal characters found in parameter '{name}'; legal range is '{pattern}'.")


def not_required(name: str) -> BinanceError:
    return BinanceError(-1106, f"Parameter '{name}' sent when not required.")


def invalid_value(name: str) -> BinanceError:
    return BinanceError(-1130, f"Data sent for parameter '{name}' is not valid.")


def unsupported_combination() -> BinanceError:
    return BinanceError(-1014, "Unsupported order combination.")


# Our service codes -> (Binance code, Binance message or None to keep ours).
_FIXED: dict[str, tuple[int, str | None]] = {
    "unknown_market": (-1121, "Invalid symbol."),
    "market_halted": (-1013, "Market is closed."),
    "price_not_on_tick": (-1013, "Filter failure: PRICE_FILTER"),
    "quantity_not_on_lot": (-1013, "Filter failure: LOT_SIZE"),
    "quantity_too_large": (-1013, "Filter failure: LOT_SIZE"),
    "below_min_notional": (-1013, "Filter failure: NOTIONAL"),
    "above_max_notional": (-1013, "Filter failure: NOTIONAL"),
    # Our band is the same fraction either side of one reference: PERCENT_PRICE_BY_SIDE with
    # equal multipliers (CCXT reads that message as InvalidOrder).
    "price_outside_band": (-1013, "Filter failure: PERCENT_PRICE_BY_SIDE"),
    "too_many_open_orders": (-1013, "Filter failure: MAX_NUM_ORDERS"),
    "market_cancel_only": (-2010, None),
    "insufficient_funds": (-2010, INSUFFICIENT_BALANCE),
    "duplicate_client_order_id": (-2010, "Duplicate order sent."),
    "no_reference_price": (-2010, None),
    "too_many_decimals": (-1111, "Precision is over the maximum defined for this asset."),
    "quote_quantity_not_allowed": (-1014, "Unsupported order combination."),
    "price_not_allowed": (-1106, "Parameter 'price' sent when not required."),
    "invalid_time_in_force": (-1106, "Parameter 'timeInForce' sent when not required."),
    "missing_quantity": (-1102, "Param 'quantity' or 'quoteOrderQty' must be sent, but both were empty/null!"),
    "missing_price_or_quantity": (-1102, "Mandatory parameter 'price' was not sent, was empty/null, or malformed."),
    "order_not_found": (-2013, ORDER_DOES_NOT_EXIST),
    "order_not_cancellable": (-2011, UNKNOWN_ORDER),
}
# A number our filters refuse, by the field it was sent in.
_FIELD_NAMES = {"price": "price", "quantity": "quantity", "quote_quantity": "quoteOrderQty"}


def from_application_error(error: ApplicationError, *, cancelling: bool = False) -> BinanceError:
    """The Binance error a client expects for one of our services' refusals.

    ``cancelling``: an unknown order in a cancel is Binance's ``-2011``
    ("Unknown order sent."), in a query ``-2013``.
    """
    if error.code == "order_not_found" and cancelling:
        return BinanceError(-2011, UNKNOWN_ORDER)
    if error.code in ("must_be_positive", "invalid_number", "number_too_large"):
        name = _FIELD_NAMES.get(error.details.get("field", ""), "")
        return BinanceError(-1013, f"Invalid {name}." if name else error.message)
    code, message = _FIXED.get(error.code, (-1013, None))
    return BinanceError(code, message or error.message)


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """Every refusal of the Binance-compatible API in Binance's shape (DRF's own exceptions included)."""
    if isinstance(exc, ApplicationError):
        exc = from_application_error(exc)
    if outages.is_outage(exc):
        # Binance's -1001 ("DISCONNECTED"): clients (CCXT: ExchangeNotAvailable) retry it.
        outages.log_outage(exc, context["request"].path if context.get("request") else "")
        return Response(
            {"code": -1001, "msg": "Internal error; unable to process your request. Please try again."},
            status=status.HTTP_503_SERVICE_UNAVAILABLE,
            headers={"Retry-After": str(outages.RETRY_AFTER_S)},
        )
    if isinstance(exc, BinanceError):
        return Response(exc.body(), status=exc.status_code)
    if isinstance(exc, exceptions.Throttled):
        wait = int(exc.wait or 1)
        return Response(
            {
                "code": -1003,
                "msg": f"Too many requests; wait {wait} s. Please use the websocket for live updates "
                "to avoid polling the API.",
            },
            status=status.HTTP_429_TOO_MANY_REQUESTS,
            headers={"Retry-After": str(wait)},
        )
    if isinstance(exc, exceptions.MethodNotAllowed):
        return Response({"code": -1020, "msg": "This operation is not supported."}, status=exc.status_code)
    if isinstance(exc, exceptions.APIException):
        return Response({"code": -1000, "msg": str(exc.detail)}, status=exc.status_code)
    return None
