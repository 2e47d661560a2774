"""Order entry and cancellation: the web tier's half of the order flow.

``place_order`` validates, then in one transaction holds the funds and inserts
the order as PENDING; only after commit does it write the command to the
market's stream.  The engine does the rest (see ``matching.engine``).
Cancels travel the same stream, so they are ordered with placements; the
request is also recorded on the order row, so a lost stream entry loses no
cancel.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal, InvalidOperation

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import Q
from django.utils import timezone

from accounts import services as money
from accounts.models import User
from exchange_site import sql
from exchange_site.amounts import decimal_places, plain
from exchange_site.errors import ApplicationError
from marketdata.selectors import reference_prices
from markets.models import Market
from markets.selectors import market_get_by_id
from markets.units import is_multiple
from orders import streams
from orders.models import OpenOrderCount, Order

logger = logging.getLogger(__name__)

# Amounts are stored as NUMERIC(36, 18): anything at or past 10^18 cannot be held.
MAX_AMOUNT = Decimal(10) ** 18


@dataclass(frozen=True, slots=True)
class OrderRequest:
    """What a client asked for, already shape-checked by a serializer or form."""

    side: str
    type: str
    quantity: Decimal | None = None
    price: Decimal | None = None
    quote_quantity: Decimal | None = None
    time_in_force: str = Order.TimeInForce.GTC
    stp_mode: str = Order.SelfTradePrevention.NONE
    client_order_id: str | None = None


def place_order(*, user: User, market: Market, request: OrderRequest) -> Order:
    """Validate ``request``, hold its funds, store it PENDING and hand it to the engine.

    Raises ApplicationError, having written nothing, for every refusal.
    """
    order = _build_order(user=user, market=market, request=request)
    asset_id = market.quote_id if order.side == Order.Side.BUY else market.base_id
    try:
        # One statement, so one transaction and one round trip: hold the funds,
        # insert the order, write the ledger entries (see insert_holding_funds),
        # and count it against the user's open-order cap in this market.
        inserted = money.insert_holding_funds(
            user_id=user.id,
            asset_id=asset_id,
            amount=order.locked_amount,
            table="orders_order",
            row=_order_row(order),
            also=(_COUNT_ONE_SQL, {"count_user": user.id, "count_market": market.id, "count_cap": _max_open()}),
        )
    except IntegrityError as error:
        raise _refusal_from_integrity_error(error, order=order) from None
    if inserted is None:
        raise _insufficient_funds(order, market)
    order.id, order.created_at = inserted
    order.updated_at = order.created_at
    # Outside a transaction this runs now: the statement above has committed.
    transaction.on_commit(lambda: streams.send_commands(market.symbol, [(streams.PLACE, order.id)]))
    return order


_AMOUNT_SQL = "numeric(36, 18)"

# Count the inserted order (``record``) against its owner's cap in its market.  The upsert
# locks the counter row, so concurrent placements of one user in one market queue here, and
# the row's CHECK (count <= cap) refuses the one past the cap, undoing the whole statement.
_COUNT_ONE_SQL = (
    "INSERT INTO orders_openordercount (user_id, market_id, count, cap)"
    " SELECT %(count_user)s, %(count_market)s, 1, %(count_cap)s FROM record"
    " ON CONFLICT (user_id, market_id) DO UPDATE"
    " SET count = orders_openordercount.count + 1, cap = EXCLUDED.cap"
)
_COUNT_CONSTRAINT = "open_order_count_within_cap"


def _max_open() -> int:
    return settings.EXCHANGE["MAX_OPEN_ORDERS"]


def _count_orders(cursor, *, user_id: int, orders: Sequence[Order]) -> None:
    """Add ``orders`` to their owner's open-order counters, markets in id order (the lock order)."""
    per_market = Counter(order.market_id for order in orders)
    if not per_market:
        return
    markets = sorted(per_market)
    cursor.execute(
        "INSERT INTO orders_openordercount (user_id, market_id, count, cap)"
        " SELECT %s, m.market_id, m.n, %s FROM unnest(%s::bigint[], %s::int[]) AS m(market_id, n)"
        " ON CONFLICT (user_id, market_id) DO UPDATE"
        " SET count = orders_openordercount.count + EXCLUDED.count, cap = EXCLUDED.cap",
        [user_id, _max_open(), markets, [per_market[m] for m in markets]],
    )


def _too_many_open_orders(market: Market) -> ApplicationError:
    cap = _max_open()
    return ApplicationError(
        f"You already have {cap} open orders in {market.symbol}, the most one user may have; "
        "cancel some or wait for them to fill.",
        code="too_many_open_orders",
        details={"market": market.symbol, "max_open_orders": cap},
        status=409,
    )


def _insert_orders(cursor, orders: Sequence[Order]) -> None:
    """Insert new orders (ids already drawn) in one constant statement (see exchange_site.sql)."""
    if not orders:
        return
    rows = [[("id", "bigint", o.id), ("created_at", "timestamptz", o.created_at),
             ("updated_at", "timestamptz", o.updated_at), *_order_row(o)] for o in orders]  # fmt: skip
    names = [column for column, _, _ in rows[0]]
    types = [sql_type.split("(")[0] for _, sql_type, _ in rows[0]]
    cursor.execute(
        f"INSERT INTO orders_order ({', '.join(names)}) SELECT * FROM {sql.unnest(types)}",
        sql.columns([[value for _, _, value in row] for row in rows], len(names)),
    )


def _order_row(order: Order) -> list[tuple[str, str, object]]:
    """The new order's columns for a raw INSERT (the rest take their database defaults)."""
    return [
        ("user_id", "bigint", order.user_id),
        ("market_id", "bigint", order.market_id),
        ("client_order_id", "varchar", order.client_order_id),
        ("side", "varchar", order.side),
        ("type", "varchar", order.type),
        ("time_in_force", "varchar", order.time_in_force),
        ("stp_mode", "varchar", order.stp_mode),
        ("price", _AMOUNT_SQL, order.price),
        ("quantity", _AMOUNT_SQL, order.quantity),
        ("quote_quantity", _AMOUNT_SQL, order.quote_quantity),
        ("protection_price", _AMOUNT_SQL, order.protection_price),
        ("status", "varchar", order.status),
        ("filled_quantity", _AMOUNT_SQL, Decimal(0)),
        ("filled_quote", _AMOUNT_SQL, Decimal(0)),
        ("locked_amount", _AMOUNT_SQL, order.locked_amount),
        ("end_reason", "varchar", ""),
    ]


def _insufficient_funds(order: Order, market: Market) -> ApplicationError:
    asset = market.quote if order.side == Order.Side.BUY else market.base
    return ApplicationError(
        f"Insufficient {asset.symbol}: this order needs {plain(order.locked_amount)} {asset.symbol} available.",
        code="insufficient_funds",
        details={"asset": asset.symbol, "required": plain(order.locked_amount)},
    )


def _refusal_from_integrity_error(error: IntegrityError, *, order: Order) -> Exception:
    diag = getattr(error.__cause__, "diag", None)
    constraint = getattr(diag, "constraint_name", None)
    if constraint == "client_order_id_unique_per_user":
        return _duplicate_client_order_id(order.client_order_id)
    if constraint == _COUNT_CONSTRAINT:
        return _too_many_open_orders(order.market)
    return error


def _positive(name: str, value: Decimal) -> Decimal:
    try:
        finite = value.is_finite()
    except (AttributeError, InvalidOperation):
        finite = False
    if not finite:
        raise ApplicationError(f"{name} must be a number.", code="invalid_number", details={"field": name})
    if value <= 0:
        raise ApplicationError(
            f"{name} must be greater than zero, not {plain(value)}.",
            code="must_be_positive",
            details={"field": name},
        )
    if value >= MAX_AMOUNT:
        raise ApplicationError(f"{name} {plain(value)} is too large.", code="number_too_large", details={"field": name})
    return value


def _check_price(market: Market, price: Decimal) -> None:
    _positive("price", price)
    if not is_multiple(price, market.tick_size):
        raise ApplicationError(
            f"Price {plain(price)} is not a multiple of the tick size {plain(market.tick_size)}.",
            code="price_not_on_tick",
            details={"price": plain(price), "tick_size": plain(market.tick_size)},
        )


def _check_quantity(market: Market, quantity: Decimal) -> None:
    _positive("quantity", quantity)
    if not is_multiple(quantity, market.lot_size):
        raise ApplicationError(
            f"Quantity {plain(quantity)} is not a multiple of the lot size {plain(market.lot_size)}.",
            code="quantity_not_on_lot",
            details={"quantity": plain(quantity), "lot_size": plain(market.lot_size)},
        )
    if quantity > market.max_quantity:
        raise ApplicationError(
            f"Quantity {plain(quantity)} is above this market's maximum of {plain(market.max_quantity)}.",
            code="quantity_too_large",
            details={"max_quantity": plain(market.max_quantity)},
        )


def _check_notional(market: Market, notional: Decimal) -> None:
    if notional < market.min_notional:
        raise ApplicationError(
            f"Order value {plain(notional)} {market.quote.symbol} is below this market's minimum of "
            f"{plain(market.min_notional)} {market.quote.symbol}.",
            code="below_min_notional",
            details={"notional": plain(notional), "min_notional": plain(market.min_notional)},
        )
    if notional >= MAX_AMOUNT:
        raise ApplicationError(f"Order value {plain(notional)} is too large.", code="number_too_large")
    if market.max_notional is not None and notional > market.max_notional:
        raise ApplicationError(
            f"Order value {plain(notional)} {market.quote.symbol} is above this market's maximum of "
            f"{plain(market.max_notional)} {market.quote.symbol}.",
            code="above_max_notional",
            details={"notional": plain(notional), "max_notional": plain(market.max_notional)},
        )


def _check_open(market: Market) -> None:
    """Only a trading market takes new orders (cancel-only and halted markets still serve cancels)."""
    if market.status == Market.Status.CANCEL_ONLY:
        raise ApplicationError(
            f"Market {market.symbol} is in cancel-only mode: it accepts cancels but no new orders.",
            code="market_cancel_only",
            details={"market": market.symbol},
            status=409,
        )
    if not market.is_trading:
        raise ApplicationError(
            f"Market {market.symbol} is halted: it accepts no new orders until an operator resumes it.",
            code="market_halted",
            details={"market": market.symbol},
            status=409,
        )


def _band_reference(prices: dict[str, Decimal]) -> Decimal | None:
    """The price a limit order's band is centred on: last trade, else mid of bid and ask, else either."""
    if "last" in prices:
        return prices["last"]
    bid, ask = prices.get("best_bid"), prices.get("best_ask")
    if bid is not None and ask is not None:
        return (bid + ask) / 2
    return bid if bid is not None else ask


def _check_band(market: Market, price: Decimal, prices: dict[str, Decimal]) -> None:
    """Refuse a limit price further than ``LIMIT_PRICE_BAND`` from the reference (none known: no check)."""
    reference = _band_reference(prices)
    if reference is None:
        return
    band = settings.EXCHANGE["LIMIT_PRICE_BAND"]
    tick = market.tick_size
    low = max((reference * (1 - band) / tick).to_integral_value(ROUND_CEILING), 1) * tick
    high = (reference * (1 + band) / tick).to_integral_value(ROUND_FLOOR) * tick
    if low <= price <= high:
        return
    raise ApplicationError(
        f"Price {plain(price)} is outside the allowed band {plain(low)} to {plain(high)} "
        f"({plain(band * 100)}% around the reference price {plain(reference)}).",
        code="price_outside_band",
        details={"price": plain(price), "min_price": plain(low), "max_price": plain(high),
                 "reference_price": plain(reference)},
    )  # fmt: skip


def _no_reference_price(market: Market) -> ApplicationError:
    return ApplicationError(
        f"{market.symbol} has no price to protect a market order yet (no bid, ask or trade); "
        "send a limit order instead.",
        code="no_reference_price",
        details={"market": market.symbol},
    )


# symbol -> (when read, reference prices): what limit orders' bands are checked against.
_band_references: dict[str, tuple[float, dict[str, Decimal]]] = {}


def _reference_prices(market: Market, *, fresh: bool) -> dict[str, Decimal]:
    """The engine's last published best bid, best ask and last trade of ``market``.

    Market orders read them ``fresh`` (their protection price and lock depend on
    them).  A limit order's 50% band does not notice a fraction of a second, so it
    takes a copy up to ``LIMIT_BAND_REFERENCE_TTL_S`` old and saves a Redis round
    trip per placement (docs/decisions/010).
    """
    ttl = settings.EXCHANGE["LIMIT_BAND_REFERENCE_TTL_S"]
    now = time.monotonic()
    if not fresh and ttl > 0:
        cached = _band_references.get(market.symbol)
        if cached is not None and now - cached[0] < ttl:
            return cached[1]
    prices = reference_prices(symbol=market.symbol)
    if ttl > 0:
        _band_references[market.symbol] = (now, prices)
    return prices


def _build_order(*, user: User, market: Market, request: OrderRequest) -> Order:
    """Check ``request`` against the market's filters and work out what to lock."""
    _check_open(market)
    prices = _reference_prices(market, fresh=request.type == Order.Type.MARKET)
    order = Order(
        user=user,
        market=market,
        side=request.side,
        type=request.type,
        time_in_force=request.time_in_force,
        stp_mode=request.stp_mode,
        client_order_id=request.client_order_id or secrets.token_urlsafe(16),
    )
    if request.type in (Order.Type.LIMIT, Order.Type.LIMIT_MAKER):
        if request.price is None or request.quantity is None:
            raise ApplicationError("A limit order needs both price and quantity.", code="missing_price_or_quantity")
        if request.quote_quantity is not None:
            raise ApplicationError("quote_quantity is only for market buy orders.", code="quote_quantity_not_allowed")
        if request.type == Order.Type.LIMIT_MAKER and request.time_in_force != Order.TimeInForce.GTC:
            raise ApplicationError(
                "A limit maker (post-only) order rests on the book: its time in force must be GTC.",
                code="invalid_time_in_force",
            )
        _check_price(market, request.price)
        _check_quantity(market, request.quantity)
        _check_notional(market, request.price * request.quantity)
        _check_band(market, request.price, prices)
        order.price = request.price
        order.quantity = request.quantity
        order.locked_amount = request.price * request.quantity if request.side == Order.Side.BUY else request.quantity
        return order

    # Market orders: they take what the book offers now and never rest.
    if request.price is not None:
        raise ApplicationError("A market order takes no price; use a limit order to set one.", code="price_not_allowed")
    if request.time_in_force == Order.TimeInForce.FOK:
        raise ApplicationError(
            "Market orders are immediate-or-cancel; for fill-or-kill send a limit order with time_in_force fok.",
            code="invalid_time_in_force",
        )
    order.time_in_force = Order.TimeInForce.IOC
    if (request.quantity is None) == (request.quote_quantity is None):
        raise ApplicationError(
            "A market order needs exactly one of quantity or quote_quantity.", code="missing_quantity"
        )
    protection = settings.EXCHANGE["MARKET_PROTECTION"]
    if request.quote_quantity is not None:
        if request.side != Order.Side.BUY:
            raise ApplicationError(
                "quote_quantity (spend at most this much) is for market buys; sell by quantity.",
                code="quote_quantity_not_allowed",
            )
        quote = _positive("quote_quantity", request.quote_quantity)
        precision = market.quote.precision
        if decimal_places(quote) > precision:
            raise ApplicationError(
                f"quote_quantity has more than {precision} decimals, the precision of {market.quote.symbol}.",
                code="too_many_decimals",
            )
        _check_notional(market, quote)
        order.quote_quantity = quote
        order.locked_amount = quote
    else:
        _check_quantity(market, request.quantity)
        order.quantity = request.quantity
    # Every market order gets a protection price around the best opposite price (else the
    # last trade, else the best price on its own side): the engine never trades beyond it,
    # and cancels the rest with end reason price_protection.  A market with no bid, no ask
    # and no trade gives nothing to protect against: the order is refused.
    if request.side == Order.Side.SELL:
        reference = prices.get("best_bid") or prices.get("last") or prices.get("best_ask")
        if reference is None:
            raise _no_reference_price(market)
        _check_notional(market, reference * request.quantity)
        floor = (reference * (1 - protection) / market.tick_size).to_integral_value(ROUND_FLOOR)
        order.protection_price = max(floor, 1) * market.tick_size
        order.locked_amount = request.quantity
        return order
    reference = prices.get("best_ask") or prices.get("last") or prices.get("best_bid")
    if reference is None:
        raise _no_reference_price(market)
    ceiling = reference * (1 + protection) / market.tick_size
    order.protection_price = ceiling.to_integral_value(ROUND_CEILING) * market.tick_size
    if request.quantity is not None:
        # By quantity: lock at the protection price; the engine never trades above it, so
        # the lock always covers what the order pays.  (By quote the budget is the lock.)
        _check_notional(market, reference * request.quantity)
        order.locked_amount = order.protection_price * request.quantity
    return order


MAX_BATCH = 20


def place_orders(*, user: User, requests: Sequence[tuple[Market, OrderRequest]]) -> list[Order | ApplicationError]:
    """Place up to ``MAX_BATCH`` orders; each is accepted or refused on its own.

    The accepted ones, with their locked funds, commit in one transaction and
    reach the engine in one pipelined write.  The result list follows the
    request list: an ``Order`` (PENDING) or the ``ApplicationError`` that refused it.
    """
    if len(requests) > MAX_BATCH:
        raise ApplicationError(
            f"A batch holds at most {MAX_BATCH} orders; this one has {len(requests)}.",
            code="batch_too_large",
            details={"max": MAX_BATCH},
        )
    results: list[Order | ApplicationError] = []
    client_ids: set[str] = set()
    for market, request in requests:
        try:
            order = _build_order(user=user, market=market, request=request)
            if order.client_order_id in client_ids:
                raise _duplicate_client_order_id(order.client_order_id)
            client_ids.add(order.client_order_id)
            results.append(order)
        except ApplicationError as refusal:
            results.append(refusal)
    taken = set(
        Order.objects.filter(user=user, client_order_id__in=client_ids).values_list("client_order_id", flat=True)
    )
    results = [
        _duplicate_client_order_id(r.client_order_id) if isinstance(r, Order) and r.client_order_id in taken else r
        for r in results
    ]
    results = _refuse_past_the_cap(user=user, results=results)
    orders = [r for r in results if isinstance(r, Order)]
    if not orders:
        return results
    try:
        with transaction.atomic(durable=True), connection.cursor() as cursor:
            cursor.execute(
                "SELECT nextval(pg_get_serial_sequence('orders_order', 'id')) FROM generate_series(1, %s)",
                [len(orders)],
            )
            now = timezone.now()
            holds = []
            for order, (order_id,) in zip(orders, cursor.fetchall(), strict=True):
                order.id, order.created_at, order.updated_at = order_id, now, now
                market = order.market
                asset_id = market.quote_id if order.side == Order.Side.BUY else market.base_id
                holds.append(money.Hold(asset_id=asset_id, amount=order.locked_amount, order_id=order_id))
            held = money.lock_funds_batch(user_id=user.id, holds=holds)
            refused = {o.id: _insufficient_funds(o, o.market) for o in orders if o.id not in held}
            accepted = [order for order in orders if order.id in held]
            _insert_orders(cursor, accepted)
            _count_orders(cursor, user_id=user.id, orders=accepted)
            commands: dict[str, list[tuple[str, int]]] = {}
            for order in accepted:
                commands.setdefault(order.market.symbol, []).append((streams.PLACE, order.id))
            transaction.on_commit(lambda: streams.send_command_batches(commands))
    except IntegrityError as error:
        # Only a concurrent request reusing one of these client order ids, or one that
        # took the last open-order slots since _refuse_past_the_cap looked, gets here.
        refusal = _refusal_from_integrity_error(error, order=orders[0])
        if isinstance(refusal, ApplicationError) and refusal.code == "too_many_open_orders":
            markets = sorted({order.market.symbol for order in orders})
            refusal.message = f"This batch would take you past {_max_open()} open orders in {', '.join(markets)}."
        raise refusal from None
    return [refused.get(r.id, r) if isinstance(r, Order) else r for r in results]


def _refuse_past_the_cap(*, user: User, results: list[Order | ApplicationError]) -> list[Order | ApplicationError]:
    """Refuse, one by one, the batch's orders that would not fit under the user's open-order caps.

    A read without a lock, for per-order answers in the usual case; the counter's
    CHECK inside the transaction is what guarantees the cap under a race.
    """
    markets = {r.market_id for r in results if isinstance(r, Order)}
    if not markets:
        return results
    room = {market_id: _max_open() for market_id in markets}
    for market_id, count in OpenOrderCount.objects.filter(user=user, market_id__in=markets).values_list(
        "market_id", "count"
    ):
        room[market_id] -= count
    checked: list[Order | ApplicationError] = []
    for result in results:
        if isinstance(result, Order):
            if room[result.market_id] <= 0:
                result = _too_many_open_orders(result.market)
            else:
                room[result.market_id] -= 1
        checked.append(result)
    return checked


def _duplicate_client_order_id(client_order_id: str) -> ApplicationError:
    return ApplicationError(
        f"You already have an order with client order id {client_order_id!r}.",
        code="duplicate_client_order_id",
        details={"client_order_id": client_order_id},
        status=409,
    )


def request_cancels(*, user: User, order_ids: Sequence[int]) -> list[Order | ApplicationError]:
    """Ask the engine to cancel several of ``user``'s orders; one result per id, in order."""
    if len(order_ids) > MAX_BATCH:
        raise ApplicationError(
            f"A batch holds at most {MAX_BATCH} orders; this one has {len(order_ids)}.",
            code="batch_too_large",
            details={"max": MAX_BATCH},
        )
    with transaction.atomic(durable=True):
        found = {order.pk: order for order in _lock_orders(user=user, lookup=Q(pk__in=order_ids))}
        results: list[Order | ApplicationError] = []
        for order_id in order_ids:
            order = found.get(order_id)
            if order is None:
                results.append(_order_not_found(order_id=order_id))
            elif not order.is_live:
                results.append(_not_cancellable(order))
            else:
                results.append(order)
        _send_cancels([r for r in results if isinstance(r, Order)])
    return results


# One statement for the most frequent cancel: lock the user's order, record the request if it is
# live and not yet asked for, and return the row as locked.  ``{column}`` is "id" or
# "client_order_id", never user input.  The UPDATE's effect is not visible to the SELECT of the same
# statement, so the row comes back as it was locked; ``request_cancel`` fills in the request time.
_CANCEL_ONE_SQL = """
WITH locked AS (
    SELECT * FROM orders_order WHERE user_id = %(user)s AND {column} = %(value)s FOR UPDATE
), marked AS (
    UPDATE orders_order AS o SET cancel_requested_at = %(now)s
    FROM locked
    WHERE o.id = locked.id AND locked.status = ANY(%(live)s) AND locked.cancel_requested_at IS NULL
)
SELECT * FROM locked
"""


def request_cancel(*, user: User, order_id: int | None = None, client_order_id: str | None = None) -> Order:
    """Ask the engine to cancel one of ``user``'s live orders; returns the order as it stands.

    Idempotent: asking again for an order already being cancelled changes nothing
    (and streams the command again, which the engine ignores once the order ended).
    One statement instead of a locking SELECT and an UPDATE through the ORM: a
    third of order-entry traffic is cancels, and the ORM's query building was the
    larger part of their cost (py-spy on a loaded web worker; bench/profile_place.py --cancel).
    """
    column, value = ("id", order_id) if order_id is not None else ("client_order_id", client_order_id)
    now = timezone.now()
    params = {"user": user.pk, "value": value, "now": now, "live": list(Order.LIVE_STATUSES)}
    with transaction.atomic(durable=True):
        order = next(iter(Order.objects.raw(_CANCEL_ONE_SQL.format(column=column), params)), None)
        if order is None:
            raise _order_not_found(order_id=order_id, client_order_id=client_order_id)
        if not order.is_live:
            raise _not_cancellable(order)
        order.cancel_requested_at = order.cancel_requested_at or now
        order.market = market_get_by_id(market_id=order.market_id)
        _stream_cancels([order])
    return order


def request_cancel_all(*, user: User, market: Market) -> list[int]:
    """Ask the engine to cancel every live order ``user`` has in ``market``; returns their ids."""
    with transaction.atomic(durable=True):
        orders = list(_lock_orders(user=user, lookup=Q(market=market, status__in=Order.LIVE_STATUSES)))
        _send_cancels(orders)
    return [order.pk for order in orders]


def request_cancel_all_by_operator(*, user: User | None = None, market: Market | None = None) -> list[int]:
    """An operator asks the engine to cancel every live order of ``user``, of ``market``, or of both.

    The same durable path as a trader's own cancels, so the engine unlocks the
    funds in the transaction that ends each order.  At least one of the two must
    be named: a slip never cancels the whole exchange.  Returns the orders' ids.
    """
    if user is None and market is None:
        raise ApplicationError("Name a user or a market whose orders to cancel.", code="cancel_scope_missing")
    lookup = Q(status__in=Order.LIVE_STATUSES)
    if user is not None:
        lookup &= Q(user=user)
    if market is not None:
        lookup &= Q(market=market)
    with transaction.atomic(durable=True):
        orders = list(
            Order.objects.select_for_update(of=("self",)).filter(lookup).select_related("market").order_by("pk")
        )
        _send_cancels(orders)
    logger.info(
        "operator cancel all",
        extra={"user": getattr(user, "pk", None), "market": getattr(market, "symbol", None), "orders": len(orders)},
    )
    return [order.pk for order in orders]


def _lock_orders(*, user: User, lookup: Q):
    """``user``'s orders matching ``lookup``, their rows locked (not their market's), in id order."""
    return (
        Order.objects.select_for_update(of=("self",)).filter(lookup, user=user).select_related("market").order_by("pk")
    )


def _send_cancels(orders: Sequence[Order]) -> None:
    """Record a cancel request on each live order and stream it after commit.

    Call inside the transaction that locked the rows.  The request is stored
    first, so a lost stream entry loses no cancel (docs/decisions/003).
    """
    if not orders:
        return
    now = timezone.now()
    Order.objects.filter(pk__in=[o.pk for o in orders], cancel_requested_at__isnull=True).update(
        cancel_requested_at=now
    )
    for order in orders:
        order.cancel_requested_at = order.cancel_requested_at or now
    _stream_cancels(orders)


def _stream_cancels(orders: Sequence[Order]) -> None:
    """Write a cancel command for each order to its market's stream once the transaction commits."""
    commands: dict[str, list[tuple[str, int]]] = {}
    for order in orders:
        commands.setdefault(order.market.symbol, []).append((streams.CANCEL, order.pk))
    transaction.on_commit(lambda: streams.send_command_batches(commands))


def _order_not_found(**lookup: object) -> ApplicationError:
    return ApplicationError("You have no such order.", code="order_not_found", details=lookup, status=404)


def _not_cancellable(order: Order) -> ApplicationError:
    return ApplicationError(
        f"Order {order.pk} is already {order.status}; only pending or open orders can be cancelled.",
        code="order_not_cancellable",
        details={"order_id": order.pk, "status": order.status},
        status=409,
    )
