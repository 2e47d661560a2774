"""The operators' admin for users and money: deposits and withdrawals go through the ledger; balances are read-only."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.test import Client

from accounts.models import Balance, LedgerEntry, User
from accounts.selectors import external_user_id
from orders.models import Order
from orders.services import OrderRequest, place_order
from tests.factories import UserFactory
from tests.invariants import assert_exchange_invariants

pytestmark = pytest.mark.django_db

D = Decimal


def balance(user, asset) -> tuple[Decimal, Decimal]:
    row = Balance.objects.get(user=user, asset=asset)
    return row.available, row.locked


def test_a_deposit_through_the_admin_writes_the_ledger_and_changes_the_balance(admin_client, alice, btc):
    url = f"/admin/accounts/user/{alice.pk}/deposit/"
    assert admin_client.get(url).status_code == 200
    response = admin_client.post(url, {"asset": btc.pk, "amount": "1.5", "note": "wire 42"}, follow=True)
    assert response.redirect_chain[-1] == (f"/admin/accounts/user/{alice.pk}/change/", 302)
    assert "Deposited 1.5 BTC to alice." in response.content.decode()
    assert balance(alice, btc) == (D("11.5"), D(0))
    entries = LedgerEntry.objects.filter(note="wire 42", reason="deposit")
    assert sorted((e.user_id, e.amount) for e in entries) == sorted(
        [(alice.pk, D("1.5")), (external_user_id(), D("-1.5"))]
    )
    assert_exchange_invariants()


def test_a_withdrawal_through_the_admin(admin_client, alice, usdt):
    response = admin_client.post(f"/admin/accounts/user/{alice.pk}/withdraw/", {"asset": usdt.pk, "amount": "250"})
    assert response.status_code == 302
    assert balance(alice, usdt) == (D(99750), D(0))
    assert LedgerEntry.objects.filter(user=alice, reason="withdrawal", amount=D(-250)).exists()
    assert_exchange_invariants()


@pytest.mark.parametrize(
    ("action", "amount", "message"),
    [
        ("withdraw", "10.5", "Not enough BTC available to withdraw 10.5. (insufficient_funds)"),
        ("deposit", "0.000000001", "0.000000001 is not a valid amount of BTC (at most 8 decimals). (invalid_amount)"),
        ("deposit", "-3", "The amount must be a positive number, not -3. (invalid_amount)"),
    ],
)
def test_a_refused_movement_shows_the_services_error_and_changes_nothing(
    admin_client, alice, btc, action, amount, message
):
    entries = LedgerEntry.objects.count()
    response = admin_client.post(f"/admin/accounts/user/{alice.pk}/{action}/", {"asset": btc.pk, "amount": amount})
    assert response.status_code == 200
    assert message in response.content.decode()
    assert balance(alice, btc) == (D(10), D(0))
    assert LedgerEntry.objects.count() == entries


def test_money_forms_need_the_ledger_permission(alice, btc):
    clerk = UserFactory(username="clerk", is_staff=True)
    client = Client()
    client.force_login(clerk)
    response = client.post(f"/admin/accounts/user/{alice.pk}/deposit/", {"asset": btc.pk, "amount": "5"})
    assert response.status_code == 403
    assert balance(alice, btc) == (D(10), D(0))


def test_system_accounts_take_no_deposits(admin_client, btc, alice):
    external = User.objects.get(pk=external_user_id())
    assert admin_client.get(f"/admin/accounts/user/{external.pk}/deposit/").status_code == 404


def test_a_balance_cannot_be_edited_directly(admin_client, alice, btc):
    row = Balance.objects.get(user=alice, asset=btc)
    page = admin_client.get(f"/admin/accounts/balance/{row.pk}/change/")
    assert page.status_code == 200  # a read-only view
    assert 'name="available"' not in page.content.decode() and 'name="locked"' not in page.content.decode()
    response = admin_client.post(f"/admin/accounts/balance/{row.pk}/change/", {"available": "999", "locked": "0"})
    assert response.status_code == 403
    assert admin_client.post("/admin/accounts/balance/add/", {"user": alice.pk, "asset": btc.pk}).status_code == 403
    assert admin_client.post(f"/admin/accounts/balance/{row.pk}/delete/", {"post": "yes"}).status_code == 403
    assert balance(alice, btc) == (D(10), D(0))


def test_the_ledger_is_read_only(admin_client, alice):
    entry = LedgerEntry.objects.filter(user=alice).first()
    assert admin_client.get("/admin/accounts/ledgerentry/").status_code == 200
    response = admin_client.post(f"/admin/accounts/ledgerentry/{entry.pk}/change/", {"amount": "1"})
    assert response.status_code == 403


def test_the_user_page_shows_balances_read_only_and_links_the_money_forms(admin_client, alice, usdt):
    page = admin_client.get(f"/admin/accounts/user/{alice.pk}/change/")
    text = page.content.decode()
    assert page.status_code == 200
    assert "100000" in text and 'name="balances-0-available"' not in text
    assert f"/admin/accounts/user/{alice.pk}/deposit/" in text and f"/admin/accounts/user/{alice.pk}/withdraw/" in text


def test_cancel_all_orders_of_selected_users(admin_client, market, alice, bob):
    request = OrderRequest(side="buy", type="limit", price=D(100), quantity=D(1))
    mine, theirs = (place_order(user=user, market=market, request=request) for user in (alice, bob))
    response = admin_client.post(
        "/admin/accounts/user/", {"action": "cancel_all_orders", "_selected_action": [alice.pk]}, follow=True
    )
    assert "Cancel requested for 1 live order(s)" in response.content.decode()
    assert Order.objects.get(pk=mine.pk).cancel_requested_at is not None
    assert Order.objects.get(pk=theirs.pk).cancel_requested_at is None
