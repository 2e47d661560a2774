"""ASGI entry point: HTTP and WebSockets (daphne).

WebSocket origin policy: a browser always sends ``Origin``, so a connection
with one must come from an allowed host (Channels' validator), which stops
another site from opening a socket with our user's session cookie.  A client
without ``Origin`` is not a browser (a bot): it may connect, but its cookies
are ignored, so it can only authenticate with a signed API key.
"""

import os

from channels.auth import AuthMiddlewareStack
from channels.routing import ProtocolTypeRouter, URLRouter
from channels.security.websocket import AllowedHostsOriginValidator
from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "exchange_site.settings.dev")
django_asgi_app = get_asgi_application()

from compat.routing import websocket_urlpatterns as binance_websockets  # noqa: E402  (needs the apps loaded)
from marketdata.routing import websocket_urlpatterns  # noqa: E402


class OriginPolicy:
    """Origin present: check it; absent: drop the cookies (see the module docstring)."""

    def __init__(self, application) -> None:
        self.application = application
        self.checked = AllowedHostsOriginValidator(application)

    async def __call__(self, scope, receive, send):
        if any(name == b"origin" for name, _ in scope["headers"]):
            return await self.checked(scope, receive, send)
        headers = [(name, value) for name, value in scope["headers"] if name != b"cookie"]
        return await self.application({**scope, "headers": headers}, receive, send)


application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": OriginPolicy(AuthMiddlewareStack(URLRouter(websocket_urlpatterns + binance_websockets))),
    }
)
