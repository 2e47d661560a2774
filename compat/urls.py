"""Binance's REST paths, mounted at the site root (``/api/v3/...``, ``/sapi/v1/...``) next to our ``/api/v1/``."""

from django.urls import path, re_path

from compat import views

api_v3 = [
    path("ping", views.PingView.as_view()),
    path("time", views.TimeView.as_view()),
    path("exchangeInfo", views.ExchangeInfoView.as_view()),
    path("depth", views.DepthView.as_view()),
    path("trades", views.TradesView.as_view()),
    path("historicalTrades", views.HistoricalTradesView.as_view()),
    path("aggTrades", views.AggTradesView.as_view()),
    path("klines", views.KlinesView.as_view()),
    path("uiKlines", views.KlinesView.as_view()),
    path("ticker/24hr", views.Ticker24hrView.as_view()),
    path("ticker/price", views.TickerPriceView.as_view()),
    path("ticker/bookTicker", views.BookTickerView.as_view()),
    path("account", views.AccountView.as_view()),
    path("order", views.OrderView.as_view()),
    path("openOrders", views.OpenOrdersView.as_view()),
    path("allOrders", views.AllOrdersView.as_view()),
    path("myTrades", views.MyTradesView.as_view()),
    path("userDataStream", views.UserDataStreamView.as_view()),
    re_path(r"^.*$", views.UnknownEndpointView.as_view()),
]

sapi_v1 = [
    path("system/status", views.SystemStatusView.as_view()),
    path("asset/tradeFee", views.TradeFeeView.as_view()),
    path("capital/config/getall", views.CoinsView.as_view()),
    path("margin/allPairs", views.NoMarginPairsView.as_view()),
    path("margin/isolated/allPairs", views.NoMarginPairsView.as_view()),
    re_path(r"^.*$", views.UnknownEndpointView.as_view()),
]
