"""WebSocket routes of the Binance-compatible API, under ``/binance/`` (``/ws`` itself is our own protocol)."""

from django.urls import path, re_path

from compat.consumers import MarketStreamConsumer, WsApiConsumer

websocket_urlpatterns = [
    path("binance/ws", MarketStreamConsumer.as_asgi(), {"combined": False}),
    re_path(r"^binance/ws/(?P<names>.+)$", MarketStreamConsumer.as_asgi(), {"combined": False}),
    path("binance/stream", MarketStreamConsumer.as_asgi(), {"combined": True}),
    path("binance/ws-api/v3", WsApiConsumer.as_asgi()),
]
