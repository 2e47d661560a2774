from django.apps import AppConfig


class AccountsConfig(AppConfig):
    """Users, assets, balances and the ledger: the only app that moves money."""

    name = "accounts"
