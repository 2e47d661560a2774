"""Order pages: the order form's POST, cancels, and a user's order history and fills.

These serve browsers without JavaScript (forms post and the page re-renders
with a message); with JavaScript the trading page talks to the REST API
instead.  Every refusal shows the service's own message and code, as the API
would return them.
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from exchange_site import throttling
from exchange_site.amounts import plain
from exchange_site.errors import ApplicationError
from markets.views import market_or_404, render_trade_page
from orders import selectors, services
from orders.forms import HistoryFilterForm, OrderForm
from orders.models import Order

PAGE_SIZE = 50


@login_required
@require_POST
def place(request: HttpRequest, symbol: str) -> HttpResponse:
    market = market_or_404(symbol)
    form = OrderForm(request.POST)
    if not form.is_valid():
        return render_trade_page(request, market, form=form, status=400)
    wait = throttling.order_placement_wait(request.user.pk)
    if wait is not None:
        refusal = ApplicationError(f"Too many orders; try again in {int(wait) + 1} s.", code="throttled", status=429)
        response = render_trade_page(request, market, form=form, refusal=refusal, status=429)
        response["Retry-After"] = str(int(wait) + 1)
        return response
    try:
        order = services.place_order(user=request.user, market=market, request=form.order_request())
    except ApplicationError as refusal:
        return render_trade_page(request, market, form=form, refusal=refusal, status=refusal.status_code)
    messages.success(request, f"Order {order.pk} accepted: {describe(order)}.")
    return redirect("trade", symbol=market.symbol)


def describe(order: Order) -> str:
    """'buy 0.5 BTC at 100 USDT (limit, gtc)': how a person reads an order back."""
    market = order.market
    size = (
        f"{plain(order.quantity)} {market.base.symbol}"
        if order.quantity is not None
        else f"{market.base.symbol} for up to {plain(order.quote_quantity)} {market.quote.symbol}"
    )
    price = f" at {plain(order.price)} {market.quote.symbol}" if order.price is not None else " at market"
    return f"{order.side} {size}{price} ({order.get_type_display().lower()}, {order.time_in_force})"


def _back(request: HttpRequest, fallback: str) -> HttpResponseRedirect:
    """Back where the form was (``next``), if that is a page of this site."""
    target = request.POST.get("next", "")
    if not url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}):
        target = fallback
    return redirect(target)


@login_required
@require_POST
def cancel(request: HttpRequest, order_id: int) -> HttpResponse:
    try:
        order = services.request_cancel(user=request.user, order_id=order_id)
    except ApplicationError as refusal:
        messages.error(request, f"Order {order_id} was not cancelled: {refusal.message} ({refusal.code})")
        return _back(request, reverse("order-history"))
    messages.success(request, f"Cancel of order {order.pk} requested.")
    return _back(request, reverse("trade", kwargs={"symbol": order.market.symbol}))


@login_required
@require_POST
def cancel_all(request: HttpRequest) -> HttpResponse:
    market = market_or_404(request.POST.get("market", ""))
    ids = services.request_cancel_all(user=request.user, market=market)
    if ids:
        messages.success(request, f"Cancel requested for {len(ids)} open order(s) in {market.symbol}.")
    else:
        messages.info(request, f"You have no open orders in {market.symbol}.")
    return _back(request, reverse("trade", kwargs={"symbol": market.symbol}))


@login_required
def history(request: HttpRequest) -> HttpResponse:
    filters = HistoryFilterForm(request.GET)
    params = filters.cleaned_data if filters.is_valid() else {}
    market = market_or_404(params["market"]) if params.get("market") else None
    orders = selectors.order_history_for_user(user=request.user, market=market, status=params.get("status") or None)
    page = Paginator(orders.order_by("-id"), PAGE_SIZE).get_page(request.GET.get("page"))
    return render(request, "orders/history.html", {"filters": filters, "page": page})


@login_required
def fills(request: HttpRequest) -> HttpResponse:
    filters = HistoryFilterForm(request.GET)
    params = filters.cleaned_data if filters.is_valid() else {}
    market = market_or_404(params["market"]) if params.get("market") else None
    trades = selectors.fills_for_user(user=request.user, market=market)
    page = Paginator(trades, PAGE_SIZE).get_page(request.GET.get("page"))
    return render(request, "orders/fills.html", {"filters": filters, "page": page})
