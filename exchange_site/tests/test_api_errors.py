"""Errors raised before any view (no route matched) still answer in the API's shape under /api/."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("path", ["/api/v1/orders/abc", "/api/v1/orders/-5", "/api/v1/nothing", "/api/v2/orders"])
def test_an_unmatched_api_path_is_a_json_404(path):
    response = APIClient().get(path)
    assert response.status_code == 404
    body = response.json()
    assert body["code"] == "not_found" and "/api/docs" in body["message"] and body["details"] == {}


def test_an_unmatched_page_is_still_a_page():
    response = APIClient().get("/no-such-page/")
    assert response.status_code == 404
    assert response["Content-Type"].startswith("text/html")


def test_an_unmatched_binance_path_keeps_binances_shape():
    response = APIClient().get("/api/v3/noSuchEndpoint")
    assert (response.status_code, response.json()["code"]) == (404, -1020)
