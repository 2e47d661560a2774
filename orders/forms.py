"""The order form of the trading page, for browsers without JavaScript (with it, the page posts to the API).

It checks shape only (choices, numbers); the market's filters, the funds and
everything else are ``orders.services.place_order``'s to decide, so a refusal
reads exactly as the API's.
"""

from __future__ import annotations

from django import forms

from markets.selectors import market_list
from orders.models import Order
from orders.services import OrderRequest

TYPE_CHOICES = [
    (Order.Type.LIMIT.value, "Limit"),
    (Order.Type.MARKET.value, "Market"),
    (Order.Type.LIMIT_MAKER.value, "Post-only limit"),
]
TIME_IN_FORCE_CHOICES = [
    (Order.TimeInForce.GTC.value, "Good till cancelled (GTC)"),
    (Order.TimeInForce.IOC.value, "Immediate or cancel (IOC)"),
    (Order.TimeInForce.FOK.value, "Fill or kill (FOK)"),
]


class AmountInput(forms.TextInput):
    """A decimal typed as text (a number input would round through float and reject commas oddly)."""

    def __init__(self, **attrs: str) -> None:
        super().__init__(attrs={"inputmode": "decimal", "autocomplete": "off", "spellcheck": "false", **attrs})


class OrderForm(forms.Form):
    side = forms.ChoiceField(choices=Order.Side.choices, widget=forms.RadioSelect, initial=Order.Side.BUY)
    type = forms.ChoiceField(choices=TYPE_CHOICES, initial=Order.Type.LIMIT, label="Order type")
    time_in_force = forms.ChoiceField(
        choices=TIME_IN_FORCE_CHOICES,
        initial=Order.TimeInForce.GTC,
        label="Time in force",
        help_text="Limit orders only; market orders are always immediate-or-cancel, post-only orders GTC.",
    )
    price = forms.DecimalField(required=False, widget=AmountInput(placeholder="0.00"), label="Price")
    quantity = forms.DecimalField(required=False, widget=AmountInput(placeholder="0.00"), label="Quantity")
    quote_quantity = forms.DecimalField(
        required=False,
        widget=AmountInput(placeholder="0.00"),
        label="Total to spend",
        help_text="Market buys only: spend at most this much instead of buying a quantity.",
    )

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # The trading page writes these hints itself (they name the market's tick and lot).
        for name in ("price", "quantity"):
            self.fields[name].widget.attrs["aria-describedby"] = f"id_{name}_helptext"

    def order_request(self) -> OrderRequest:
        """The request for ``place_order``.  Call after ``is_valid()``.

        A market order ignores the price and time-in-force boxes the page still
        shows for limit orders, so a value left there does not refuse the order.
        """
        data = self.cleaned_data
        is_market = data["type"] == Order.Type.MARKET
        return OrderRequest(
            side=data["side"],
            type=data["type"],
            price=None if is_market else data["price"],
            quantity=data["quantity"],
            quote_quantity=data["quote_quantity"] if is_market else None,
            time_in_force=Order.TimeInForce.IOC if is_market else data["time_in_force"],
        )


class HistoryFilterForm(forms.Form):
    """The filters of the order history and fills pages (GET)."""

    market = forms.ChoiceField(required=False)
    status = forms.ChoiceField(choices=[("", "Any status"), *Order.Status.choices], required=False)

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["market"].choices = [("", "All markets"), *((m.symbol, m.symbol) for m in market_list())]
