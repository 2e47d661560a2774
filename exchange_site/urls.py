"""URLs: the REST API under /api/v1/ (its schema and docs), the Binance-compatible one under /api/v3/ and /sapi/v1/,
the admin, and the site's pages."""

from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

from accounts import api as accounts_api
from accounts import views as accounts_views
from compat import urls as compat_urls
from marketdata import api as marketdata_api
from markets import api as markets_api
from orders import api as orders_api

from . import health_views

# Outside any view (no route matched, or a request Django refused), /api/ still answers in its error shape.
handler400 = "exchange_site.api.bad_request"
handler404 = "exchange_site.api.not_found"

api_v1 = [
    path("markets", markets_api.MarketsView.as_view(), name="markets"),
    path("markets/<str:symbol>", markets_api.MarketDetailView.as_view(), name="market-detail"),
    path("markets/<str:symbol>/depth", marketdata_api.DepthView.as_view(), name="market-depth"),
    path("markets/<str:symbol>/trades", marketdata_api.RecentTradesView.as_view(), name="market-trades"),
    path("markets/<str:symbol>/ticker", marketdata_api.TickerView.as_view(), name="market-ticker"),
    path("tickers", marketdata_api.TickersView.as_view(), name="tickers"),
    path("markets/<str:symbol>/klines", marketdata_api.KlinesView.as_view(), name="market-klines"),
    path("account/balances", accounts_api.BalancesView.as_view(), name="balances"),
    path("api-keys", accounts_api.ApiKeysView.as_view(), name="api-keys"),
    path("api-keys/<int:key_id>", accounts_api.ApiKeyDetailView.as_view(), name="api-key-detail"),
    path("withdrawals", accounts_api.WithdrawalsView.as_view(), name="withdrawals"),
    path("orders", orders_api.OrdersView.as_view(), name="orders"),
    path("orders/open", orders_api.OpenOrdersView.as_view(), name="orders-open"),
    path("orders/cancel-all", orders_api.CancelAllView.as_view(), name="orders-cancel-all"),
    path("orders/batch", orders_api.OrdersBatchView.as_view(), name="orders-batch"),
    path("orders/cancel-batch", orders_api.CancelBatchView.as_view(), name="orders-cancel-batch"),
    path("orders/<int:order_id>", orders_api.OrderDetailView.as_view(), name="order-detail"),
    path("orders/client/<str:client_order_id>", orders_api.OrderByClientIdView.as_view(), name="order-by-client-id"),
    path("trades", orders_api.MyTradesView.as_view(), name="my-trades"),
]

urlpatterns = [
    path("api/v1/", include(api_v1)),
    # The Binance-compatible API (compat/, docs/binance-compat.md): Binance's own paths.
    path("api/v3/", include(compat_urls.api_v3)),
    path("sapi/v1/", include(compat_urls.sapi_v1)),
    path("api/schema", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
    path("api/redoc", SpectacularRedocView.as_view(url_name="schema"), name="api-redoc"),
    # Operators sign in through the site's login (throttles, lockout, two-factor), not Django's admin form.
    path("admin/login/", accounts_views.admin_login, name="admin-login"),
    path("admin/", admin.site.urls),
    path("healthz", health_views.healthz, name="healthz"),
    path("readyz", health_views.readyz, name="readyz"),
    # Pages, server-rendered by the apps that own their data.
    path("orders/", include("orders.urls")),
    path("", include("accounts.urls")),
    path("", include("markets.urls")),
]
