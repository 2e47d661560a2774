"""Fixtures for the Binance-compatible API: a client that signs as Binance's clients do."""

from __future__ import annotations

import pytest

from accounts.services import api_key_create
from compat.symbols import index
from compat.tests.binance import BinanceClient


@pytest.fixture(autouse=True)
def _forget_symbols():
    """Markets are created anew by each test: the symbol index must not remember the last test's."""
    index.forget()
    yield
    index.forget()


@pytest.fixture
def alice_binance(client, alice) -> BinanceClient:
    key, secret = api_key_create(user=alice, label="binance")
    return BinanceClient(client, key=key.key, secret=secret)


@pytest.fixture
def bob_binance(client, bob) -> BinanceClient:
    key, secret = api_key_create(user=bob, label="binance")
    return BinanceClient(client, key=key.key, secret=secret)
