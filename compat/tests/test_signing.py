"""Binance's request signing: the documented test vectors, and every refusal in Binance's codes.

The vectors are those of Binance's API documentation ("SIGNED endpoint
examples for POST /api/v3/order"): the same secret and parameters, sent in
the query string, in the body, or split between the two.
"""

from __future__ import annotations

from urllib.parse import urlencode

import pytest

from accounts.services import api_key_revoke
from compat.signing import total_params, ws_api_payload
from compat.tests.binance import binance_signature, now_ms

pytestmark = pytest.mark.django_db

SECRET = "NhqPtmdSJYdKjVHjA7PZj4Mge3R5YNiP1e3UZjInClVN65XAbvqqM6A7H5fATj0j"
QUERY = "symbol=LTCBTC&side=BUY&type=LIMIT&timeInForce=GTC&quantity=1&price=0.1&recvWindow=5000&timestamp=1499827319559"
SIGNATURE = "c8db56825ae71d6d79447849e617115f4a920fa2acdcab2b053c4b2838bd6b71"
MIXED_QUERY = "symbol=LTCBTC&side=BUY&type=LIMIT&timeInForce=GTC"
MIXED_BODY = "quantity=1&price=0.1&recvWindow=5000&timestamp=1499827319559"
MIXED_SIGNATURE = "0fd168b8ddb4876a0358a8d14d0c9f3da0e9b20c5d52b2a00fcf7d1c602f9a77"


@pytest.mark.parametrize(
    ("query", "body"),
    [
        (f"{QUERY}&signature={SIGNATURE}", ""),  # example 1: all in the query string
        ("", f"{QUERY}&signature={SIGNATURE}"),  # example 2: all in the body
    ],
)
def test_binance_documented_vectors_query_or_body(query, body):
    payload, signature = total_params(query, body)
    assert payload == QUERY
    assert signature == SIGNATURE
    assert binance_signature(SECRET, payload) == SIGNATURE


def test_binance_documented_vector_mixed_query_and_body():
    payload, signature = total_params(MIXED_QUERY, f"{MIXED_BODY}&signature={MIXED_SIGNATURE}")
    assert payload == MIXED_QUERY + MIXED_BODY  # concatenated without a separator, as Binance defines it
    assert binance_signature(SECRET, payload) == MIXED_SIGNATURE == signature


def test_ws_api_payload_is_the_sorted_params_without_the_signature():
    params = {"timestamp": "1", "apiKey": "k", "signature": "s", "recvWindow": "5000"}
    assert ws_api_payload(params) == "apiKey=k&recvWindow=5000&timestamp=1"


def test_a_signed_request_is_accepted_once(alice_binance):
    query = alice_binance.signed_query({"recvWindow": 5000})
    first = alice_binance.raw("GET", "/api/v3/account", query=query)
    assert first.status_code == 200, first.json()
    assert first.json()["accountType"] == "SPOT"
    replayed = alice_binance.raw("GET", "/api/v3/account", query=query)
    assert replayed.status_code == 400
    assert replayed.json()["code"] == -1021


def test_the_signature_is_case_insensitive_and_may_sit_in_the_query_of_a_post(alice_binance, market):
    query = urlencode(
        {
            "symbol": "BTCUSDT",
            "side": "BUY",
            "type": "LIMIT",
            "timeInForce": "GTC",
            "quantity": "0.01",
            "price": "100",
            "newOrderRespType": "ACK",
            "timestamp": now_ms(),
        }
    )
    signature = binance_signature(alice_binance.secret, query).upper()
    response = alice_binance.raw("POST", "/api/v3/order", query=f"{query}&signature={signature}")
    assert response.status_code == 200, response.json()
    assert response.json()["symbol"] == "BTCUSDT"


def test_mixed_query_and_body_is_verified_over_both(alice_binance, market):
    query = "symbol=BTCUSDT&side=BUY&type=LIMIT&timeInForce=GTC"
    body = f"quantity=0.01&price=100&newOrderRespType=ACK&timestamp={now_ms()}"
    signature = binance_signature(alice_binance.secret, query + body)
    response = alice_binance.raw("POST", "/api/v3/order", query=query, body=f"{body}&signature={signature}")
    assert response.status_code == 200, response.json()


@pytest.mark.parametrize(
    ("timestamp_offset", "message"),
    [
        (-6000, "Timestamp for this request is outside of the recvWindow."),  # expired (default window 5000)
        (+2000, "Timestamp for this request was 1000ms ahead of the server's time."),  # future-dated
    ],
)
def test_expired_and_future_dated_requests_are_refused(alice_binance, timestamp_offset, message):
    query = urlencode({"timestamp": now_ms() + timestamp_offset})
    query += "&signature=" + binance_signature(alice_binance.secret, query)
    response = alice_binance.raw("GET", "/api/v3/account", query=query)
    assert (response.status_code, response.json()) == (400, {"code": -1021, "msg": message})


def test_a_wider_recv_window_is_honoured_up_to_60000(alice_binance):
    query = urlencode({"recvWindow": 20000, "timestamp": now_ms() - 10000})
    query += "&signature=" + binance_signature(alice_binance.secret, query)
    assert alice_binance.raw("GET", "/api/v3/account", query=query).status_code == 200
    query = urlencode({"recvWindow": 60001, "timestamp": now_ms()})
    query += "&signature=" + binance_signature(alice_binance.secret, query)
    assert alice_binance.raw("GET", "/api/v3/account", query=query).json()["code"] == -1131


def test_tampered_requests_are_refused(alice_binance, market):
    body = alice_binance.signed_query(
        {"symbol": "BTCUSDT", "side": "BUY", "type": "LIMIT", "timeInForce": "GTC", "quantity": "0.01", "price": "100"}
    )
    tampered = body.replace("quantity=0.01", "quantity=1")
    response = alice_binance.raw("POST", "/api/v3/order", body=tampered)
    assert (response.status_code, response.json()) == (
        400,
        {"code": -1022, "msg": "Signature for this request is not valid."},
    )
    # A parameter added to the query string of a body-signed request is signed over too.
    response = alice_binance.raw("POST", "/api/v3/order", query="newOrderRespType=ACK", body=body)
    assert response.json()["code"] == -1022


def test_unknown_missing_and_revoked_keys(alice_binance, alice):
    query = alice_binance.signed_query({})
    unknown = alice_binance.raw("GET", "/api/v3/account", query=query, key="not-a-key")
    assert (unknown.status_code, unknown.json()["code"]) == (401, -2015)
    missing = alice_binance.client.get(f"/api/v3/account?{alice_binance.signed_query({})}")
    assert (missing.status_code, missing.json()["code"]) == (401, -2014)
    api_key_revoke(user=alice, key_id=alice.api_keys.get().pk)
    revoked = alice_binance.get("/api/v3/account")
    assert (revoked.status_code, revoked.json()["code"]) == (401, -2015)


def test_missing_timestamp_or_signature_are_mandatory_parameters(alice_binance):
    no_signature = alice_binance.raw("GET", "/api/v3/account", query=f"timestamp={now_ms()}")
    assert no_signature.json() == {
        "code": -1102,
        "msg": "Mandatory parameter 'signature' was not sent, was empty/null, or malformed.",
    }
    no_timestamp = alice_binance.raw(
        "GET", "/api/v3/account", query="recvWindow=5000&signature=" + binance_signature(alice_binance.secret, "x")
    )
    assert no_timestamp.json()["code"] == -1102
    assert "'timestamp'" in no_timestamp.json()["msg"]
    bad_timestamp = alice_binance.raw("GET", "/api/v3/account", query="timestamp=soon&signature=00")
    assert bad_timestamp.json()["code"] == -1100


def test_our_own_api_still_refuses_the_same_things(client, alice):
    """The shared checks behind both APIs: our scheme keeps its behaviour after the refactor."""
    from accounts.services import api_key_create
    from tests.signing import signed_headers

    key, secret = api_key_create(user=alice)
    headers = signed_headers(key=key.key, secret=secret, method="GET", path="/api/v1/account/balances")
    assert client.get("/api/v1/account/balances", **headers).status_code == 200
    replay = client.get("/api/v1/account/balances", **headers)
    assert replay.status_code == 401
    assert "already used" in replay.json()["message"]
