"""``manage.py seed_demo``: demo assets, markets, users and funds (idempotent)."""

from django.core.management.base import BaseCommand

from exchange_site.demo import credentials_path, seed_demo


class Command(BaseCommand):
    help = "Create the demo assets, markets (BTC_USDT, ETH_USDT), logins and funds; safe to run again."

    def handle(self, *args, **options) -> None:
        result = seed_demo()
        for login in result["logins"]:
            self.stdout.write(f"  login {login['username']} / {login['password']}  ({login['role']})")
        self.stdout.write(f"  market maker API key saved in {credentials_path()}")
