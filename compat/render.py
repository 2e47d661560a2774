"""Our orders, trades, markets and market data in Binance's response shapes.

Amounts stay exact decimal strings (``"0.5"``, not ``0.5``); Binance pads to
eight decimals, clients parse either.  A value Binance would give that we do
not have is ``"0"`` (Binance's own convention for "none").
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from django.conf import settings

from accounts.models import Asset, Balance
from exchange_site.amounts import plain
from marketdata.klines import to_millis
from marketdata.models import Kline
from markets.models import Market
from orders.models import Order, Trade
from orders.services import MAX_AMOUNT

STATUS = {
    Order.Status.PENDING: "NEW",
    Order.Status.OPEN: "NEW",
    Order.Status.PARTIALLY_FILLED: "PARTIALLY_FILLED",
    Order.Status.FILLED: "FILLED",
    Order.Status.CANCELLED: "CANCELED",
    Order.Status.EXPIRED: "EXPIRED",
    Order.Status.REJECTED: "REJECTED",
}
TYPE = {Order.Type.LIMIT: "LIMIT", Order.Type.LIMIT_MAKER: "LIMIT_MAKER", Order.Type.MARKET: "MARKET"}
SIDE = {Order.Side.BUY: "BUY", Order.Side.SELL: "SELL"}
ORDER_TYPES = ["LIMIT", "LIMIT_MAKER", "MARKET"]
STP_MODES = ["NONE", "EXPIRE_TAKER", "EXPIRE_MAKER", "EXPIRE_BOTH"]


def amount(value: Decimal | None) -> str:
    return "0" if value is None else plain(value)


def millis(moment: dt.datetime | None) -> int:
    return 0 if moment is None else to_millis(moment)


def order_status(status: str, end_reason: str) -> str:
    """Binance's status; an order ended by self-trade prevention is ``EXPIRED_IN_MATCH`` there."""
    if status == Order.Status.EXPIRED and end_reason == "self_trade_prevention":
        return "EXPIRED_IN_MATCH"
    return STATUS[status]


def time_in_force(order_type: str, tif: str) -> str:
    # Binance shows market orders as GTC; ours are stored as IOC (what they do).
    return "GTC" if order_type == Order.Type.MARKET else tif.upper()


def _order_core(order: Order, symbol: str) -> dict[str, Any]:
    return {
        "symbol": symbol,
        "orderId": order.pk,
        "orderListId": -1,
        "clientOrderId": order.client_order_id,
        "price": amount(order.price),
        "origQty": amount(order.quantity),
        "executedQty": amount(order.filled_quantity),
        "cummulativeQuoteQty": amount(order.filled_quote),
        "status": order_status(order.status, order.end_reason),
        "timeInForce": time_in_force(order.type, order.time_in_force),
        "type": TYPE[order.type],
        "side": SIDE[order.side],
    }


def order_ack(order: Order, symbol: str) -> dict[str, Any]:
    return {
        "symbol": symbol,
        "orderId": order.pk,
        "orderListId": -1,
        "clientOrderId": order.client_order_id,
        "transactTime": millis(order.created_at),
    }


def order_result(order: Order, symbol: str) -> dict[str, Any]:
    """``newOrderRespType=RESULT`` (and FULL, with ``fills`` added)."""
    return {
        **_order_core(order, symbol),
        "transactTime": millis(order.created_at),
        "origQuoteOrderQty": amount(order.quote_quantity),
        "workingTime": millis(order.created_at),
        "selfTradePreventionMode": order.stp_mode.upper(),
    }


def order_query(order: Order, symbol: str) -> dict[str, Any]:
    """GET /api/v3/order, openOrders, allOrders."""
    return {
        **_order_core(order, symbol),
        "stopPrice": "0",
        "icebergQty": "0",
        "time": millis(order.created_at),
        "updateTime": millis(order.updated_at),
        "isWorking": order.status in (Order.Status.OPEN, Order.Status.PARTIALLY_FILLED),
        "workingTime": millis(order.created_at),
        "origQuoteOrderQty": amount(order.quote_quantity),
        "selfTradePreventionMode": order.stp_mode.upper(),
    }


def order_cancel(order: Order, symbol: str, *, cancel_client_id: str) -> dict[str, Any]:
    """DELETE /api/v3/order and openOrders: ``origClientOrderId`` is the order's, ``clientOrderId`` the cancel's."""
    return {
        **_order_core(order, symbol),
        "origClientOrderId": order.client_order_id,
        "clientOrderId": cancel_client_id,
        "transactTime": millis(order.updated_at),
        "origQuoteOrderQty": amount(order.quote_quantity),
        "selfTradePreventionMode": order.stp_mode.upper(),
    }


def fill(trade: Trade, *, order: Order) -> dict[str, Any]:
    """One entry of a FULL response's ``fills``: this order's side of ``trade``."""
    buyer = trade.buy_order_id == order.pk
    market = order.market
    return {
        "price": plain(trade.price),
        "qty": plain(trade.quantity),
        "commission": plain(trade.buyer_fee if buyer else trade.seller_fee),
        "commissionAsset": market.base.symbol if buyer else market.quote.symbol,
        "tradeId": trade.trade_id,
    }


def my_trades(trade: Trade, *, user_id: int, symbol: str) -> list[dict[str, Any]]:
    """``user``'s side(s) of ``trade`` for GET myTrades: two rows when the user was on both sides."""
    market = trade.market
    rows = []
    for is_buyer, owner, order_id, fee, fee_asset in (
        (True, trade.buyer_id, trade.buy_order_id, trade.buyer_fee, market.base.symbol),
        (False, trade.seller_id, trade.sell_order_id, trade.seller_fee, market.quote.symbol),
    ):
        if owner != user_id:
            continue
        rows.append(
            {
                "symbol": symbol,
                "id": trade.trade_id,
                "orderId": order_id,
                "orderListId": -1,
                "price": plain(trade.price),
                "qty": plain(trade.quantity),
                "quoteQty": plain(trade.quote_quantity),
                "commission": plain(fee),
                "commissionAsset": fee_asset,
                "time": millis(trade.executed_at),
                "isBuyer": is_buyer,
                "isMaker": trade.taker_side != ("buy" if is_buyer else "sell"),
                "isBestMatch": True,
            }
        )
    return rows


# --- markets ------------------------------------------------------------------------------


def _largest_multiple_below(limit: Decimal, step: Decimal) -> str:
    """The largest multiple of ``step`` under ``limit``: the filters' upper bounds (amounts stay below 10^18)."""
    return plain((limit - step) // step * step)


# Binance's symbol statuses: cancel-only is its BREAK (no trading, orders can be cancelled).
_SYMBOL_STATUS = {Market.Status.TRADING: "TRADING", Market.Status.CANCEL_ONLY: "BREAK", Market.Status.HALTED: "HALT"}


def symbol_info(market: Market, symbol: str) -> dict[str, Any]:
    """One entry of exchangeInfo's ``symbols``: status, assets, precisions, order types and filters."""
    base, quote = market.base, market.quote
    return {
        "symbol": symbol,
        "status": _SYMBOL_STATUS.get(market.status, "HALT"),
        "baseAsset": base.symbol,
        "baseAssetPrecision": base.precision,
        "quoteAsset": quote.symbol,
        "quotePrecision": quote.precision,
        "quoteAssetPrecision": quote.precision,
        "baseCommissionPrecision": base.precision,
        "quoteCommissionPrecision": quote.precision,
        "orderTypes": ORDER_TYPES,
        "icebergAllowed": False,
        "ocoAllowed": False,
        "otoAllowed": False,
        "quoteOrderQtyMarketAllowed": True,
        "allowTrailingStop": False,
        "cancelReplaceAllowed": False,
        "amendAllowed": False,
        "isSpotTradingAllowed": True,
        "isMarginTradingAllowed": False,
        "filters": [
            {
                "filterType": "PRICE_FILTER",
                "minPrice": plain(market.tick_size),
                "maxPrice": _largest_multiple_below(MAX_AMOUNT, market.tick_size),
                "tickSize": plain(market.tick_size),
            },
            {
                "filterType": "LOT_SIZE",
                "minQty": plain(market.lot_size),
                "maxQty": plain(market.max_quantity),
                "stepSize": plain(market.lot_size),
            },
            {
                "filterType": "MARKET_LOT_SIZE",
                "minQty": plain(market.lot_size),
                "maxQty": plain(market.max_quantity),
                "stepSize": plain(market.lot_size),
            },
            {
                "filterType": "NOTIONAL",
                "minNotional": plain(market.min_notional),
                "applyMinToMarket": True,
                "maxNotional": plain(market.max_notional)
                if market.max_notional is not None
                else _largest_multiple_below(MAX_AMOUNT, Decimal(1)),
                "applyMaxToMarket": market.max_notional is not None,
                "avgPriceMins": 0,
            },
            _price_band(),
            {"filterType": "MAX_NUM_ORDERS", "maxNumOrders": settings.EXCHANGE["MAX_OPEN_ORDERS"]},
        ],
        "permissions": [],
        "permissionSets": [["SPOT"]],
        "defaultSelfTradePreventionMode": "NONE",
        "allowedSelfTradePreventionModes": STP_MODES,
    }


def _price_band() -> dict[str, Any]:
    """The limit price band (LIMIT_PRICE_BAND) as Binance's PERCENT_PRICE_BY_SIDE, the same both sides.

    Ours is centred on the last trade (else the middle of the book), not a 5-minute average.
    """
    up = plain(1 + settings.EXCHANGE["LIMIT_PRICE_BAND"])
    down = plain(max(1 - settings.EXCHANGE["LIMIT_PRICE_BAND"], Decimal(0)))
    return {
        "filterType": "PERCENT_PRICE_BY_SIDE",
        "bidMultiplierUp": up,
        "bidMultiplierDown": down,
        "askMultiplierUp": up,
        "askMultiplierDown": down,
        "avgPriceMins": 0,
    }


def bps(rate: Decimal) -> int:
    """A fee rate in Binance's account units (basis points): 0.001 -> 10."""
    return int(rate * 10_000)


# --- market data ----------------------------------------------------------------------------


def _or_zero(value: str | None) -> str:
    return "0" if value is None else value


def ticker_24hr(
    symbol: str, row: dict[str, Any] | None, top: dict[str, Any], last: dict[str, Any] | None, *, now_ms: int
) -> dict[str, Any]:
    """GET ticker/24hr from our ticker read model, the top of the book and the last trade."""
    row = row or {}
    bid = top["bids"][0] if top["bids"] else ["0", "0"]
    ask = top["asks"][0] if top["asks"] else ["0", "0"]
    count = row.get("trades") or 0
    last_id = last["id"] if last else -1
    volume, quote_volume = Decimal(row.get("volume") or 0), Decimal(row.get("quote_volume") or 0)
    return {
        "symbol": symbol,
        "priceChange": _or_zero(row.get("change")),
        "priceChangePercent": _or_zero(row.get("change_percent")),
        "weightedAvgPrice": plain(quote_volume / volume) if volume else "0",
        "prevClosePrice": _or_zero(row.get("open")),
        "lastPrice": _or_zero(row.get("close") or (last and last["price"])),
        "lastQty": last["qty"] if last else "0",
        "bidPrice": bid[0],
        "bidQty": bid[1],
        "askPrice": ask[0],
        "askQty": ask[1],
        "openPrice": _or_zero(row.get("open")),
        "highPrice": _or_zero(row.get("high")),
        "lowPrice": _or_zero(row.get("low")),
        "volume": plain(volume),
        "quoteVolume": plain(quote_volume),
        "openTime": row.get("open_time") or now_ms - 86_400_000,
        "closeTime": row.get("close_time") or now_ms,
        # Trade ids count up by one per market, so the window's first id follows from its count.
        "firstId": last_id - count + 1 if count and last_id > 0 else -1,
        "lastId": last_id if count else -1,
        "count": count,
    }


def ticker_mini(full: dict[str, Any]) -> dict[str, Any]:
    """``type=MINI``: the 24h ticker without the book and the changes."""
    keys = ("symbol", "openPrice", "highPrice", "lowPrice", "lastPrice", "volume", "quoteVolume", "openTime",
            "closeTime", "firstId", "lastId", "count")  # fmt: skip
    return {key: full[key] for key in keys}


def book_ticker(symbol: str, top: dict[str, Any]) -> dict[str, Any]:
    bid = top["bids"][0] if top["bids"] else ["0", "0"]
    ask = top["asks"][0] if top["asks"] else ["0", "0"]
    return {"symbol": symbol, "bidPrice": bid[0], "bidQty": bid[1], "askPrice": ask[0], "askQty": ask[1]}


def trade_row(trade: Trade) -> dict[str, Any]:
    """A trade from the database in the shape of our recent-trades read model."""
    return {
        "id": trade.trade_id,
        "price": plain(trade.price),
        "qty": plain(trade.quantity),
        "quote_qty": plain(trade.quote_quantity),
        "time": millis(trade.executed_at),
        "is_buyer_maker": trade.taker_side == Order.Side.SELL,
    }


def public_trade(row: dict[str, Any]) -> dict[str, Any]:
    """A row of our recent-trades read model as GET /api/v3/trades shows it."""
    return {
        "id": row["id"],
        "price": row["price"],
        "qty": row["qty"],
        "quoteQty": row["quote_qty"],
        "time": row["time"],
        "isBuyerMaker": row["is_buyer_maker"],
        "isBestMatch": True,
    }


def agg_trade(row: dict[str, Any]) -> dict[str, Any]:
    """A trade (read-model row) as an aggregate trade: each of ours is its own aggregate (first = last = its id)."""
    trade_id = row["id"]
    return {"a": trade_id, "p": row["price"], "q": row["qty"], "f": trade_id, "l": trade_id, "T": row["time"],
            "m": row["is_buyer_maker"], "M": True}  # fmt: skip


def kline(candle: Kline) -> list[Any]:
    """One candle as Binance's array; taker buy volumes are not tracked here (``"0"``)."""
    return [
        millis(candle.open_time), plain(candle.open), plain(candle.high), plain(candle.low), plain(candle.close),
        plain(candle.volume), millis(candle.close_time), plain(candle.quote_volume), candle.trades, "0", "0", "0",
    ]  # fmt: skip


def coin(asset: Asset, balance: Balance | None) -> dict[str, Any]:
    """``capital/config/getall``: deposits and withdrawals are an operator's business here, so all disabled."""
    step = plain(Decimal(1).scaleb(-asset.precision))
    network = {
        "network": asset.symbol, "coin": asset.symbol, "name": asset.name, "isDefault": True, "depositEnable": False,
        "withdrawEnable": False, "withdrawIntegerMultiple": step, "withdrawFee": "0", "withdrawMin": "0",
        "withdrawMax": "0", "minConfirm": 0, "unLockConfirm": 0, "depositDesc": "", "withdrawDesc": "",
        "sameAddress": False, "estimatedArrivalTime": 0, "busy": False,
    }  # fmt: skip
    return {
        "coin": asset.symbol, "name": asset.name, "depositAllEnable": False, "withdrawAllEnable": False,
        "free": amount(balance.available if balance else None), "locked": amount(balance.locked if balance else None),
        "freeze": "0", "withdrawing": "0", "ipoing": "0", "ipoable": "0", "storage": "0", "isLegalMoney": False,
        "trading": True, "networkList": [network],
    }  # fmt: skip
