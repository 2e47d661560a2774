"""Account pages: sign up, log in (throttled, with a two-factor step), the account, API keys, two-factor setup.

Log out is Django's own view (see accounts/urls.py).
"""

from __future__ import annotations

import time

import segno
from django.conf import settings
from django.contrib import messages
from django.contrib.auth import REDIRECT_FIELD_NAME, login
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.contrib.auth.views import redirect_to_login
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.safestring import mark_safe
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_protect
from django.views.decorators.http import require_POST

from accounts import selectors, services
from accounts.forms import (
    ApiKeyCreateForm,
    LoginCodeForm,
    OtpCodeForm,
    SignUpForm,
    TwoFactorConfirmForm,
    WithdrawalForm,
)
from accounts.models import ApiKey, User
from exchange_site.amounts import plain
from exchange_site.client_ip import client_ip
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
        "two_factor_enabled": services.two_factor_enabled(user),
        "withdrawals": selectors.recent_withdrawals(user=user, limit=RECENT_WITHDRAWALS),
    }
    return render(request, "accounts/account.html", context, status=status)


@never_cache  # the response shows a secret: no browser or proxy may keep it
@login_required
@require_POST
def api_key_create(request: HttpRequest) -> HttpResponse:
    form = ApiKeyCreateForm(request.POST)
    if not form.is_valid():
        return _render_account(request, key_form=form, status=400)
    data = form.cleaned_data
    try:
        api_key, secret = services.api_key_create(
            user=request.user,
            label=data["label"],
            scopes=data["scopes"],
            ip_allowlist=data["ip_allowlist"],
            otp_code=data["otp_code"],
        )
    except ApplicationError as refusal:
        form.add_error(None, f"{refusal.message} ({refusal.code})")
        return _render_account(request, key_form=form, status=refusal.status_code)
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


# --- Withdrawals ----------------------------------------------------------------------------------------

RECENT_WITHDRAWALS = 20


@never_cache  # shows balances that change with every withdrawal
@login_required
def withdraw(request: HttpRequest) -> HttpResponse:
    """The withdrawal form (GET) and a withdrawal (POST), through ``services.withdrawal_request``.

    A refusal re-renders the form with the service's message and code, and the
    refusal's status; a withdrawal redirects back here, where the balance shows
    what is left.  Works without JavaScript.
    """
    user = request.user
    balances = selectors.balances_for_user(user=user)
    form = WithdrawalForm(request.POST if request.method == "POST" else None, balances=balances)
    refusal: ApplicationError | None = None
    status = 200
    if request.method == "POST":
        if form.is_valid():
            data = form.cleaned_data
            try:
                asset = selectors.asset_by_symbol(symbol=data["asset"])
                services.withdrawal_request(
                    user=user, asset=asset, amount=data["amount"], address=data["address"], otp_code=data["otp_code"]
                )
            except ApplicationError as error:
                refusal, status = error, error.status_code
            else:
                messages.success(
                    request, f"Withdrawal of {plain(data['amount'])} {asset.symbol} to {data['address']} sent."
                )
                return redirect("withdraw")
        else:
            status = 400
        # A code is good once (and may have been spent): never put it back in the form.
        form.data = form.data.copy()
        form.data["otp_code"] = ""
    context = {
        "form": form,
        "refusal": refusal,
        "balances": balances,
        "withdrawals": selectors.recent_withdrawals(user=user, limit=RECENT_WITHDRAWALS),
        "two_factor_enabled": services.two_factor_enabled(user),
    }
    return render(request, "accounts/withdraw.html", context, status=status)


# --- Log in: throttled per username and address, locked after repeated failures, then the 2FA step ---------

PENDING_2FA = "pending_2fa"
PENDING_2FA_SECONDS = 300


def _refused_login(request: HttpRequest, refusal: ApplicationError, *, template: str, context: dict) -> HttpResponse:
    response = render(request, template, {**context, "refusal": refusal}, status=refusal.status_code)
    if "retry_after" in refusal.details:
        response["Retry-After"] = str(refusal.details["retry_after"])
    return response


def _ip_of(request: HttpRequest) -> str:
    return str(client_ip(request.META) or "unknown")


def admin_login(request: HttpRequest) -> HttpResponse:
    """The admin's login page: operators sign in through ours, with its throttles, lockout and two-factor step.

    Django's own admin login checks only the password, so it would have been a
    way around all three for the most powerful accounts.  A signed-in user who
    is not staff is told so here (sending them back to the admin would loop).
    """
    destination = request.GET.get(REDIRECT_FIELD_NAME) or reverse("admin:index")
    if not request.user.is_authenticated:
        return redirect_to_login(destination, login_url=reverse("login"))
    if not url_has_allowed_host_and_scheme(destination, allowed_hosts={request.get_host()}):
        destination = reverse("admin:index")
    if request.user.is_active and request.user.is_staff:
        return redirect(destination)
    return render(request, "accounts/not_an_operator.html", status=403)


class LoginView(auth_views.LoginView):
    """Django's login, with each attempt counted before the password is checked (``services.login_attempt``).

    A user with two-factor authentication on is not logged in yet: the session
    remembers who passed the password for a few minutes and ``login_verify``
    asks for the code.
    """

    template_name = "accounts/login.html"
    redirect_authenticated_user = True

    def post(self, request: HttpRequest, *args, **kwargs) -> HttpResponse:
        username = request.POST.get("username", "")
        try:
            services.login_attempt(username=username, ip=_ip_of(request))
        except ApplicationError as refusal:
            # An unbound form: a bound one would check the password when the template shows its
            # errors, and its answer would tell a throttled guesser whether the guess was right.
            form = self.get_form_class()(self.request, initial={"username": username})
            return _refused_login(
                request, refusal, template=self.template_name, context=self.get_context_data(form=form)
            )
        return super().post(request, *args, **kwargs)

    def form_valid(self, form) -> HttpResponse:
        user = form.get_user()
        if services.two_factor_enabled(user):
            self.request.session[PENDING_2FA] = {
                "user_id": user.pk,
                "backend": user.backend,
                "at": time.time(),
                "next": self.get_success_url(),
            }
            return redirect("login-verify")
        services.login_succeeded(username=user.get_username())
        return super().form_valid(form)


@never_cache
@csrf_protect
def login_verify(request: HttpRequest) -> HttpResponse:
    """The second step of a login with two-factor authentication on: the code from the app."""
    pending = request.session.get(PENDING_2FA)
    if not pending or time.time() - pending["at"] > PENDING_2FA_SECONDS:
        request.session.pop(PENDING_2FA, None)
        messages.error(request, "Log in again: the two-factor step expired or was not started.")
        return redirect("login")
    user = User.objects.get(pk=pending["user_id"])
    form = LoginCodeForm(request.POST or None)
    template = "accounts/login_verify.html"
    if request.method == "POST" and form.is_valid():
        try:
            services.login_attempt(username=user.get_username(), ip=_ip_of(request))
            remaining = services.two_factor_check_login(user=user, code=form.cleaned_data["code"])
        except ApplicationError as refusal:
            return _refused_login(request, refusal, template=template, context={"form": form})
        del request.session[PENDING_2FA]
        login(request, user, backend=pending["backend"])
        services.login_succeeded(username=user.get_username())
        if remaining is not None:
            messages.warning(
                request,
                f"You logged in with a recovery code; {remaining} of {services.RECOVERY_CODE_COUNT} remain. "
                "Withdrawals still need a code from your authenticator app: if you lost it, ask an operator "
                "to reset your two-factor authentication.",
            )
        target = pending["next"]
        if not url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}):
            target = settings.LOGIN_REDIRECT_URL
        return redirect(target)
    return render(request, template, {"form": form}, status=400 if form.errors else 200)


# --- Two-factor setup -------------------------------------------------------------------------------------


@never_cache  # shows the secret while it is being set up
@login_required
def two_factor(request: HttpRequest) -> HttpResponse:
    """Two-factor state: on (with a form to turn it off), being set up (secret, QR, confirm) or off."""
    return _render_two_factor(request)


def _render_two_factor(request: HttpRequest, *, recovery_codes: list[str] | None = None) -> HttpResponse:
    user = request.user
    context: dict = {
        "enabled": services.two_factor_enabled(user),
        "form": OtpCodeForm(),
        "confirm_form": TwoFactorConfirmForm(),
        "withdrawal_hold_hours": settings.EXCHANGE["WITHDRAWAL_HOLD_AFTER_TWO_FACTOR_S"] // 3600,
        "recovery_codes": recovery_codes,
        "recovery_remaining": selectors.recovery_codes_remaining(user=user),
        "recovery_total": services.RECOVERY_CODE_COUNT,
    }
    secret = None if context["enabled"] else services.two_factor_pending_secret(user=user)
    if secret is not None:
        uri = services.two_factor_uri(user=user, secret=secret)
        context |= {"secret": secret, "uri": uri, "qr": mark_safe(segno.make(uri).svg_inline(scale=4))}  # noqa: S308
    return render(request, "accounts/two_factor.html", context)


@login_required
@require_POST
def two_factor_setup(request: HttpRequest) -> HttpResponse:
    try:
        services.two_factor_begin(user=request.user)
    except ApplicationError as refusal:
        messages.error(request, f"{refusal.message} ({refusal.code})")
    return redirect("two-factor")


@never_cache  # the response shows the recovery codes, this once
@login_required
@require_POST
def two_factor_confirm(request: HttpRequest) -> HttpResponse:
    form = TwoFactorConfirmForm(request.POST)
    try:
        codes = services.two_factor_confirm(
            user=request.user, code=form.data.get("code"), password=form.data.get("password")
        )
    except ApplicationError as refusal:
        messages.error(request, f"{refusal.message} ({refusal.code})")
        return redirect("two-factor")
    messages.success(request, "Two-factor authentication is on: logins now ask for a code.")
    return _render_two_factor(request, recovery_codes=codes)


@never_cache  # the response shows the recovery codes, this once
@login_required
@require_POST
def two_factor_recovery_regenerate(request: HttpRequest) -> HttpResponse:
    form = OtpCodeForm(request.POST)
    try:
        codes = services.two_factor_recovery_regenerate(user=request.user, code=form.data.get("code"))
    except ApplicationError as refusal:
        messages.error(request, f"{refusal.message} ({refusal.code})")
        return redirect("two-factor")
    messages.success(request, "New recovery codes made: the old ones no longer work.")
    return _render_two_factor(request, recovery_codes=codes)


@login_required
@require_POST
def two_factor_disable(request: HttpRequest) -> HttpResponse:
    form = OtpCodeForm(request.POST)
    try:
        services.two_factor_disable(user=request.user, code=form.data.get("code"))
    except ApplicationError as refusal:
        messages.error(request, f"{refusal.message} ({refusal.code})")
        return redirect("two-factor")
    messages.success(request, "Two-factor authentication is off.")
    return redirect("account")
