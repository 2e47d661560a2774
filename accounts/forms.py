"""Forms of the account pages: they check shape; accounts.services decides."""

from __future__ import annotations

from django import forms
from django.contrib.auth.forms import UserCreationForm

from accounts.models import User


class SignUpForm(UserCreationForm):
    """A new trader: a username and a password (Django's validators check its strength)."""

    class Meta(UserCreationForm.Meta):
        model = User
        fields = ("username",)


class ApiKeyCreateForm(forms.Form):
    label = forms.CharField(
        max_length=64, required=False, help_text="A name to tell your keys apart, e.g. the bot that uses it."
    )
