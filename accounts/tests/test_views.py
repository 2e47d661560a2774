"""Account pages: sign up, log in and out, balances, ledger history, API keys; nobody sees another's."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.test import Client

from accounts import services
from accounts.models import ApiKey, User
from accounts.services import api_key_create, api_key_secret

pytestmark = pytest.mark.django_db


def logged_in(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_sign_up_creates_the_user_and_logs_them_in(usdt):
    client = Client()
    assert client.get("/signup/").status_code == 200
    response = client.post(
        "/signup/", {"username": "carol", "password1": "a-long-passphrase-7", "password2": "a-long-passphrase-7"}
    )
    assert response.status_code == 302 and response["Location"] == "/account/"
    carol = User.objects.get(username="carol")
    assert carol.kind == User.Kind.CUSTOMER
    page = client.get("/account/")
    assert page.status_code == 200 and b"carol" in page.content


def test_sign_up_refuses_mismatched_passwords_and_creates_nobody(db):
    response = Client().post("/signup/", {"username": "carol", "password1": "a-long-passphrase-7", "password2": "x"})
    assert response.status_code == 400
    assert b"The two password fields" in response.content
    assert not User.objects.filter(username="carol").exists()


def test_log_in_and_log_out(alice):
    client = Client()
    page = client.get("/login/")
    assert page.status_code == 200 and b'name="password"' in page.content
    wrong = client.post("/login/", {"username": "alice", "password": "nope"})
    assert wrong.status_code == 200 and b"Please enter a correct username and password" in wrong.content
    response = client.post("/login/", {"username": "alice", "password": "pass", "next": "/account/"})
    assert response.status_code == 302 and response["Location"] == "/account/"
    assert client.get("/account/").status_code == 200
    assert client.post("/logout/").status_code == 302
    assert client.get("/account/").status_code == 302


@pytest.mark.parametrize("path", ["/account/"])
def test_anonymous_users_are_sent_to_log_in(db, path):
    response = Client().get(path)
    assert response.status_code == 302 and response["Location"] == f"/login/?next={path}"


def test_account_page_shows_own_balances_ledger_and_keys_only(alice, bob, btc):
    services.deposit(user=alice, asset=btc, amount=Decimal("0.25"), note="wire ALICE-REF")
    services.deposit(user=bob, asset=btc, amount=Decimal("7.125"), note="wire BOB-REF")
    api_key_create(user=alice, label="alice-bot")
    api_key_create(user=bob, label="bob-bot")
    page = logged_in(alice).get("/account/")
    assert page.status_code == 200
    text = page.content.decode()
    assert "10.25" in text  # 10 funded + 0.25
    assert "ALICE-REF" in text and "alice-bot" in text
    assert "BOB-REF" not in text and "bob-bot" not in text and "17.125" not in text


def test_creating_an_api_key_shows_its_secret_once(alice):
    client = logged_in(alice)
    response = client.post("/account/api-keys/", {"label": "grid bot", "scopes": ["read", "trade"]})
    assert response.status_code == 201
    assert "no-store" in response["Cache-Control"]
    key = ApiKey.objects.get(user=alice)
    secret = api_key_secret(key)
    assert secret in response.content.decode() and key.key in response.content.decode()
    again = client.get("/account/")
    assert "grid bot" in again.content.decode() and secret not in again.content.decode()


def test_an_overlong_key_label_is_refused_with_the_form_error(alice):
    response = logged_in(alice).post("/account/api-keys/", {"label": "x" * 65})
    assert response.status_code == 400
    assert b"Ensure this value has at most 64 characters" in response.content
    assert not ApiKey.objects.filter(user=alice).exists()


def test_revoking_own_key(alice):
    key, _ = api_key_create(user=alice, label="old")
    response = logged_in(alice).post(f"/account/api-keys/{key.pk}/revoke/", follow=True)
    key.refresh_from_db()
    assert key.revoked_at is not None
    assert "revoked" in response.content.decode()


def test_revoking_someone_elses_key_does_nothing_and_says_so(alice, bob):
    key, _ = api_key_create(user=bob, label="bob-bot")
    response = logged_in(alice).post(f"/account/api-keys/{key.pk}/revoke/", follow=True)
    key.refresh_from_db()
    assert key.revoked_at is None
    assert f"You have no API key with id {key.pk}. (api_key_not_found)" in response.content.decode()


def test_key_pages_only_take_posts(alice):
    key, _ = api_key_create(user=alice)
    client = logged_in(alice)
    assert client.get("/account/api-keys/").status_code == 405
    assert client.get(f"/account/api-keys/{key.pk}/revoke/").status_code == 405
