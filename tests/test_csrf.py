"""CSRF: every unsafe request authenticated by a session cookie is refused without the token.

The client enforces CSRF checks as a browser's would be enforced; each request
is sent once without a token (403, nothing changed) and, to show the check is
what refused it, the same request with the token is not refused for CSRF.
"""

from __future__ import annotations

import pytest
from django.test import Client

from accounts import services
from accounts.models import ApiKey, LedgerEntry, RecoveryCode, TwoFactorDevice
from accounts.tests.two_factor import enable_two_factor, fresh_code
from orders.models import Order

pytestmark = pytest.mark.django_db
ORDER = {"market": "BTC_USDT", "side": "buy", "type": "limit", "price": "100", "quantity": "1"}


def state():
    return (
        Order.objects.count(),
        Order.objects.filter(cancel_requested_at__isnull=False).count(),
        ApiKey.objects.count(),
        ApiKey.objects.filter(revoked_at__isnull=False).count(),
        LedgerEntry.objects.count(),
        TwoFactorDevice.objects.count(),
        list(RecoveryCode.objects.order_by("pk").values_list("pk", "used_at")),
    )


def session_client(user) -> Client:
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    return client


def with_token(client: Client) -> str:
    client.get("/account/")
    return client.cookies["csrftoken"].value


def requests_for(alice, market):
    """(method, path, data, json?) of every session-authenticated unsafe request the site serves."""
    order = Order.objects.create(
        user=alice, market=market, client_order_id="c1", side="buy", type="limit", price=1, quantity=1
    ).pk
    key = services.api_key_create(user=alice)[0].pk
    return [
        # REST API over the session
        ("post", "/api/v1/orders", ORDER, True),
        ("post", "/api/v1/orders/batch", {"orders": [ORDER]}, True),
        ("delete", f"/api/v1/orders/{order}", None, True),
        ("post", "/api/v1/orders/cancel-all", {"market": "BTC_USDT"}, True),
        ("post", "/api/v1/orders/cancel-batch", {"order_ids": [order]}, True),
        ("post", "/api/v1/api-keys", {"label": "x"}, True),
        ("delete", f"/api/v1/api-keys/{key}", None, True),
        ("post", "/api/v1/withdrawals", {"asset": "BTC", "amount": "1", "address": "x1"}, True),
        # pages
        ("post", "/orders/place/BTC_USDT/", {**ORDER, "type": "limit", "time_in_force": "gtc"}, False),
        ("post", f"/orders/{order}/cancel/", {}, False),
        ("post", "/orders/cancel-all/", {"market": "BTC_USDT"}, False),
        ("post", "/account/api-keys/", {"label": "x", "scopes": ["read"]}, False),
        ("post", f"/account/api-keys/{key}/revoke/", {}, False),
        ("post", "/account/withdraw/", {"asset": "BTC", "amount": "1", "address": "x1", "otp_code": "123456"}, False),
        ("post", "/account/2fa/setup/", {}, False),
        ("post", "/account/2fa/confirm/", {"code": "123456"}, False),
        ("post", "/account/2fa/recovery-codes/", {"code": "123456"}, False),
        ("post", "/account/2fa/disable/", {"code": "123456"}, False),
        ("post", "/logout/", {}, False),
    ]


def send(client: Client, method: str, path: str, data, as_json: bool, token: str | None = None):
    headers = {"HTTP_X_CSRFTOKEN": token} if token else {}
    if as_json:
        import json

        body = "" if data is None else json.dumps(data)
        return getattr(client, method)(path, data=body, content_type="application/json", **headers)
    return getattr(client, method)(path, data=data, **headers)


def test_every_session_unsafe_request_needs_the_csrf_token(alice, market):
    client = session_client(alice)
    for method, path, data, as_json in requests_for(alice, market):
        before = state()
        response = send(client, method, path, data, as_json)
        assert response.status_code == 403, (method, path, response.status_code)
        if as_json:
            assert "CSRF" in response.json()["message"], path
        else:
            assert b"CSRF" in response.content, path
        assert state() == before, path


def test_the_same_requests_pass_the_csrf_check_with_the_token(alice, market):
    """The control: with the token none of them is refused for CSRF (so the test above can fail)."""
    client = session_client(alice)
    token = with_token(client)
    for method, path, data, as_json in requests_for(alice, market):
        response = send(client, method, path, data, as_json, token=token)
        content = response.content.decode(errors="replace")
        assert not (response.status_code == 403 and "CSRF" in content), (method, path)
        if path == "/logout/":
            break


def test_withdrawal_and_two_factor_enable_with_a_real_code_need_the_token(alice, market):
    secret = enable_two_factor(alice)
    client = session_client(alice)
    data = {"asset": "BTC", "amount": "1", "address": "x1", "otp_code": fresh_code(alice, secret)}
    before = state()
    refused = send(client, "post", "/api/v1/withdrawals", data, True)
    assert refused.status_code == 403 and state() == before
    accepted = send(client, "post", "/api/v1/withdrawals", data, True, token=with_token(client))
    assert accepted.status_code == 201


def test_the_login_form_needs_the_token(alice):
    alice.set_password("a-long-enough-password-1")
    alice.save()
    client = Client(enforce_csrf_checks=True)
    refused = client.post("/login/", {"username": "alice", "password": "a-long-enough-password-1"})
    assert refused.status_code == 403
    assert "_auth_user_id" not in client.session
    client.get("/login/")
    token = client.cookies["csrftoken"].value
    response = client.post(
        "/login/", {"username": "alice", "password": "a-long-enough-password-1", "csrfmiddlewaretoken": token}
    )
    assert response.status_code == 302 and "_auth_user_id" in client.session
