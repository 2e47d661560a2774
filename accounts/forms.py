"""Forms of the account pages: they check shape; accounts.services decides."""

from __future__ import annotations

from django import forms
from django.contrib.auth.forms import UserCreationForm

from accounts.models import ApiScope, User, default_api_scopes
from exchange_site.amounts import plain


def two_factor_code_field(*, help_text: str) -> forms.CharField:
    """An optional authenticator-app code beside other fields; the service says when one is needed."""
    return forms.CharField(
        required=False,
        max_length=16,
        label="Two-factor code",
        help_text=help_text,
        widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "inputmode": "numeric"}),
    )


class SignUpForm(UserCreationForm):
    """A new trader: a username and a password (Django's validators check its strength)."""

    class Meta(UserCreationForm.Meta):
        model = User
        fields = ("username",)


class ApiKeyCreateForm(forms.Form):
    label = forms.CharField(
        max_length=64, required=False, help_text="A name to tell your keys apart, e.g. the bot that uses it."
    )
    scopes = forms.MultipleChoiceField(
        choices=ApiScope.choices, initial=default_api_scopes, widget=forms.CheckboxSelectMultiple
    )
    ip_allowlist = forms.CharField(
        required=False,
        label="IP allowlist",
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="Addresses or networks the key may be used from, one per line or comma-separated "
        "(e.g. 203.0.113.7 or 10.0.0.0/24). Required for withdraw; empty: anywhere.",
    )
    otp_code = two_factor_code_field(help_text="Needed for the withdraw scope.")

    def clean_ip_allowlist(self) -> list[str]:
        text = self.cleaned_data.get("ip_allowlist") or ""
        return [entry for entry in text.replace(",", "\n").split() if entry]


class OtpCodeForm(forms.Form):
    code = forms.CharField(
        max_length=16,
        label="Code from your authenticator app",
        widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "inputmode": "numeric", "autofocus": True}),
    )


class TwoFactorConfirmForm(OtpCodeForm):
    """Turning two-factor on: the account's password too, so a stolen session alone cannot choose the phone."""

    password = forms.CharField(
        label="Your password", widget=forms.PasswordInput(attrs={"autocomplete": "current-password"}), strip=False
    )


class WithdrawalForm(forms.Form):
    """A withdrawal from the account pages.  Only the shape is checked here: ``withdrawal_request`` decides."""

    asset = forms.ChoiceField(label="Asset")
    amount = forms.DecimalField(
        label="Amount", widget=forms.TextInput(attrs={"inputmode": "decimal", "autocomplete": "off"})
    )
    address = forms.CharField(
        max_length=128,
        label="Destination address",
        help_text="The address the funds are sent to. Check it: a withdrawal cannot be undone.",
        widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false"}),
    )
    otp_code = two_factor_code_field(
        help_text="The current code from your authenticator app (a recovery code is not accepted here)."
    )

    def __init__(self, *args, balances, **kwargs) -> None:
        """``balances``: the user's own balance rows; only their assets can be chosen."""
        super().__init__(*args, **kwargs)
        self.fields["asset"].choices = [
            (balance.asset.symbol, f"{balance.asset.symbol} ({plain(balance.available)} available)")
            for balance in balances
        ]


class LoginCodeForm(OtpCodeForm):
    """The login's second step, where a recovery code also works (and nowhere else)."""

    code = forms.CharField(
        max_length=32,
        label="Code from your authenticator app, or a recovery code",
        widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "autofocus": True, "spellcheck": "false"}),
    )
