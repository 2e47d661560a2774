"""Account pages: sign up, the account (balances, ledger history) and API keys.

Log in and log out are Django's own views (see accounts/urls.py).
"""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST

from accounts import selectors, services
from accounts.forms import ApiKeyCreateForm, SignUpForm
from accounts.models import ApiKey
from exchange_site.errors import ApplicationError

LEDGER_PAGE_SIZE = 50


def signup(request: HttpRequest) -> HttpResponse:
    if request.user.is_authenticated:
        return redirect("account")
    form = SignUpForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        user = form.save()
        login(request, user, backend="django.contrib.auth.backends.ModelBackend")
        messages.success(request, f"Welcome, {user.username}. An operator credits deposits to your account.")
        return redirect("account")
    return render(request, "accounts/signup.html", {"form": form}, status=400 if form.errors else 200)


@login_required
def account(request: HttpRequest) -> HttpResponse:
    return _render_account(request)


def _render_account(
    request: HttpRequest, *, key_form: ApiKeyCreateForm | None = None, new_key: ApiKey | None = None, status: int = 200
) -> HttpResponse:
    user = request.user
    ledger = Paginator(selectors.ledger_for_user(user=user), LEDGER_PAGE_SIZE).get_page(request.GET.get("page"))
    context = {
        "balances": selectors.balances_for_user(user=user),
        "ledger": ledger,
        "api_keys": selectors.api_keys_for_user(user=user),
        "key_form": key_form or ApiKeyCreateForm(),
        "new_key": new_key,
    }
    return render(request, "accounts/account.html", context, status=status)


@never_cache  # the response shows a secret: no browser or proxy may keep it
@login_required
@require_POST
def api_key_create(request: HttpRequest) -> HttpResponse:
    form = ApiKeyCreateForm(request.POST)
    if not form.is_valid():
        return _render_account(request, key_form=form, status=400)
    api_key, secret = services.api_key_create(user=request.user, label=form.cleaned_data["label"])
    api_key.secret = secret  # shown in this response only; it is stored encrypted and never shown again
    return _render_account(request, new_key=api_key, status=201)


@login_required
@require_POST
def api_key_revoke(request: HttpRequest, key_id: int) -> HttpResponse:
    try:
        api_key = services.api_key_revoke(user=request.user, key_id=key_id)
    except ApplicationError as refusal:
        messages.error(request, f"{refusal.message} ({refusal.code})")
    else:
        messages.success(request, f"API key {api_key.key[:8]}... revoked: requests signed with it are refused.")
    return redirect("account")
