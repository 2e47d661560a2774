"""Deposits, withdrawals and API keys: the services that move money or hand out credentials."""

from __future__ import annotations

from decimal import Decimal

import pytest

from accounts import services
from accounts.models import ApiKey, Balance, LedgerEntry
from accounts.selectors import external_user_id
from exchange_site.errors import ApplicationError
from tests.factories import UserFactory
from tests.invariants import assert_exchange_invariants

D = Decimal

pytestmark = pytest.mark.django_db


def bal(user, asset) -> tuple[Decimal, Decimal]:
    b = Balance.objects.filter(user=user, asset=asset).first()
    return (b.available, b.locked) if b else (D(0), D(0))


def snapshot():
    """Everything a refused money operation must leave untouched."""
    return (
        sorted(Balance.objects.values_list("user_id", "asset_id", "available", "locked")),
        LedgerEntry.objects.count(),
    )


def test_deposit_credits_available_with_two_entries_that_sum_to_zero(btc):
    user = UserFactory()
    services.deposit(user=user, asset=btc, amount=D("1.5"), note="wire 42")

    assert bal(user, btc) == (D("1.5"), 0)
    entries = list(LedgerEntry.objects.order_by("id").values_list("user_id", "bucket", "amount", "reason", "note"))
    assert entries == [
        (user.id, "available", D("1.5"), "deposit", "wire 42"),
        (external_user_id(), "available", D("-1.5"), "deposit", "wire 42"),
    ]
    assert sum(amount for _, _, amount, _, _ in entries) == 0
    # The outside world has no balance row: its entries are its record.
    assert not Balance.objects.filter(user_id=external_user_id()).exists()
    assert_exchange_invariants()


def test_withdraw_debits_available(alice, btc):
    before = LedgerEntry.objects.count()
    services.withdraw(user=alice, asset=btc, amount=D("2.25"))

    assert bal(alice, btc) == (D("7.75"), 0)
    new = LedgerEntry.objects.order_by("id")[before:]
    assert [(e.user_id, e.amount, e.reason) for e in new] == [
        (alice.id, D("-2.25"), "withdrawal"),
        (external_user_id(), D("2.25"), "withdrawal"),
    ]
    assert_exchange_invariants()


def test_withdraw_everything_leaves_zero(alice, btc):
    services.withdraw(user=alice, asset=btc, amount=D(10))
    assert bal(alice, btc) == (0, 0)
    assert_exchange_invariants()


@pytest.mark.parametrize("amount", ["10.00000001", "11", "1000000"])
def test_withdraw_more_than_available_is_refused_and_changes_nothing(alice, btc, amount):
    before = snapshot()
    with pytest.raises(ApplicationError) as refused:
        services.withdraw(user=alice, asset=btc, amount=D(amount))
    assert refused.value.code == "insufficient_funds"
    assert refused.value.status_code == 400
    assert snapshot() == before
    assert_exchange_invariants()


def test_withdraw_of_an_asset_never_held_is_insufficient_funds(btc):
    user = UserFactory()
    with pytest.raises(ApplicationError) as refused:
        services.withdraw(user=user, asset=btc, amount=D(1))
    assert refused.value.code == "insufficient_funds"
    assert not Balance.objects.filter(user=user).exists()
    assert not LedgerEntry.objects.filter(user=user).exists()


def test_locked_funds_cannot_be_withdrawn(alice, btc, market):
    from orders.services import OrderRequest, place_order

    place_order(user=alice, market=market, request=OrderRequest(side="sell", type="limit", price=D(100), quantity=D(4)))
    with pytest.raises(ApplicationError) as refused:
        services.withdraw(user=alice, asset=btc, amount=D(7))
    assert refused.value.code == "insufficient_funds"
    services.withdraw(user=alice, asset=btc, amount=D(6))
    assert bal(alice, btc) == (0, D(4))
    assert_exchange_invariants()


INVALID_AMOUNTS = [
    D(0),
    D("-0"),
    D("-1"),
    D("NaN"),
    D("sNaN"),
    D("Infinity"),
    D("-Infinity"),
    D("0.000000001"),  # 9 decimals: BTC has 8
    D("1.123456789"),
    D(10) ** 18,
    D(10) ** 18 + 1,
    D("999999999999999999.99999999") + D("0.00000001"),
]


@pytest.mark.parametrize("operation", [services.deposit, services.withdraw])
@pytest.mark.parametrize("amount", INVALID_AMOUNTS, ids=str)
def test_invalid_amounts_are_refused(alice, btc, operation, amount):
    before = snapshot()
    with pytest.raises(ApplicationError) as refused:
        operation(user=alice, asset=btc, amount=amount)
    assert refused.value.code == "invalid_amount"
    assert snapshot() == before


@pytest.mark.parametrize("operation", [services.deposit, services.withdraw])
@pytest.mark.parametrize("amount", [D(10) ** 20, D("1e30")], ids=str)
def test_huge_amounts_are_invalid_amount_not_a_crash(alice, btc, operation, amount):
    with pytest.raises(ApplicationError) as refused:
        operation(user=alice, asset=btc, amount=amount)
    assert refused.value.code == "invalid_amount"


def test_large_valid_deposit_of_an_18_decimal_asset():
    from tests.factories import AssetFactory

    token = AssetFactory(symbol="TOKEN18", precision=18)
    user = UserFactory()
    services.deposit(user=user, asset=token, amount=D("20000000000"))
    assert bal(user, token) == (D("20000000000"), 0)


def test_amount_with_exactly_the_asset_precision_is_accepted(alice, btc):
    services.deposit(user=alice, asset=btc, amount=D("0.00000001"))
    services.deposit(user=alice, asset=btc, amount=D("1.10000000000"))  # trailing zeros are not extra decimals
    assert bal(alice, btc) == (D("11.10000001"), 0)
    assert_exchange_invariants()


# --- API keys --------------------------------------------------------------------------


def test_api_key_create_returns_a_secret_that_is_not_stored_in_clear(alice):
    api_key, secret = services.api_key_create(user=alice, label="bot")

    stored = ApiKey.objects.get(pk=api_key.pk)
    assert stored.user == alice and stored.label == "bot" and stored.is_active
    assert len(secret) >= 32 and secret != stored.key
    raw = bytes(stored.secret_encrypted)
    assert secret.encode() not in raw
    assert services.api_key_secret(stored) == secret
    # A second key gets a different key and secret.
    other, other_secret = services.api_key_create(user=alice)
    assert other.key != api_key.key and other_secret != secret


def test_api_key_label_is_cut_to_64_characters(alice):
    api_key, _ = services.api_key_create(user=alice, label="x" * 100)
    assert api_key.label == "x" * 64


def test_api_key_revoke_sets_revoked_at_and_is_idempotent(alice):
    api_key, _ = services.api_key_create(user=alice)
    revoked = services.api_key_revoke(user=alice, key_id=api_key.pk)
    assert revoked.revoked_at is not None and not revoked.is_active
    first = ApiKey.objects.get(pk=api_key.pk).revoked_at
    assert first is not None

    again = services.api_key_revoke(user=alice, key_id=api_key.pk)
    assert again.revoked_at == first


def test_revoking_someone_elses_key_is_not_found(alice, bob):
    api_key, _ = services.api_key_create(user=alice)
    with pytest.raises(ApplicationError) as refused:
        services.api_key_revoke(user=bob, key_id=api_key.pk)
    assert refused.value.code == "api_key_not_found"
    assert refused.value.status_code == 404
    assert ApiKey.objects.get(pk=api_key.pk).revoked_at is None


def test_revoking_a_missing_key_is_not_found(alice):
    with pytest.raises(ApplicationError) as refused:
        services.api_key_revoke(user=alice, key_id=999_999)
    assert refused.value.code == "api_key_not_found"
