"""What an API key may do: its scopes, checked on every request it signs.

``read`` covers safe methods (GET, HEAD, OPTIONS), ``trade`` the unsafe ones
(placing and cancelling orders) unless a view says otherwise in
``required_scopes`` (e.g. ``{"POST": "withdraw"}``).  Sessions are not
scoped: a logged-in person may do what the pages let them.
"""

from __future__ import annotations

from rest_framework.permissions import SAFE_METHODS, BasePermission

from accounts.models import ApiKey, ApiScope
from exchange_site.errors import ApplicationError


def required_scope(method: str, view) -> str:
    explicit = getattr(view, "required_scopes", {}).get(method)
    if explicit:
        return explicit
    return ApiScope.READ.value if method in SAFE_METHODS else ApiScope.TRADE.value


class ApiKeyScopes(BasePermission):
    """Refuse a request signed with a key that lacks the scope the request needs (403 ``scope_required``)."""

    def has_permission(self, request, view) -> bool:
        api_key = request.auth
        if not isinstance(api_key, ApiKey):
            return True
        scope = required_scope(request.method, view)
        if api_key.has_scope(scope):
            return True
        raise ApplicationError(
            f"This API key lacks the {scope!r} scope needed for {request.method} {request.path}; "
            f"its scopes: {', '.join(api_key.scopes) or 'none'}. Create a key with that scope.",
            code="scope_required",
            status=403,
            details={"scope": scope, "key_scopes": list(api_key.scopes)},
        )
