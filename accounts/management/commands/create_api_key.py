"""``manage.py create_api_key USERNAME [--label L]``: an API key for a bot, its secret printed once."""

from django.core.management.base import BaseCommand, CommandError

from accounts.models import User
from accounts.services import api_key_create


class Command(BaseCommand):
    help = "Create an API key for USERNAME and print the key and its secret (the secret is not shown again)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("username")
        parser.add_argument("--label", default="")

    def handle(self, *args, username: str, label: str, **options) -> None:
        user = User.objects.filter(username=username, kind=User.Kind.CUSTOMER).first()
        if user is None:
            raise CommandError(f"There is no user {username!r}. Demo users: alice, bob (python3 scripts/dev.py run).")
        api_key, secret = api_key_create(user=user, label=label)
        self.stdout.write(f"key={api_key.key}\nsecret={secret}")
