"""``manage.py create_api_key USERNAME [--label L] [--scopes read,trade] [--ip 203.0.113.7 ...]``.

Creates an API key for a bot and prints it with its secret, once.  Scopes
default to read and trade; ``withdraw`` needs at least one ``--ip``.  An
operator on the server is trusted in place of the user's two-factor code.
"""

from django.core.management.base import BaseCommand, CommandError

from accounts.models import User
from accounts.services import api_key_create
from exchange_site.errors import ApplicationError


class Command(BaseCommand):
    help = "Create an API key for USERNAME and print the key and its secret (the secret is not shown again)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("username")
        parser.add_argument("--label", default="")
        parser.add_argument(
            "--scopes", default="read,trade", help="Comma-separated: read, trade, withdraw (default read,trade)."
        )
        parser.add_argument(
            "--ip",
            action="append",
            default=[],
            dest="ips",
            help="An address or CIDR network the key may be used from (repeat; required with withdraw).",
        )

    def handle(self, *args, username: str, label: str, scopes: str, ips: list[str], **options) -> None:
        user = User.objects.filter(username=username, kind=User.Kind.CUSTOMER).first()
        if user is None:
            raise CommandError(f"There is no user {username!r}. Demo users: alice, bob (python3 scripts/dev.py run).")
        wanted = [scope.strip() for scope in scopes.split(",") if scope.strip()]
        try:
            api_key, secret = api_key_create(user=user, label=label, scopes=wanted, ip_allowlist=ips, by_operator=True)
        except ApplicationError as refusal:
            raise CommandError(f"{refusal.message} ({refusal.code})") from None
        self.stdout.write(f"key={api_key.key}\nsecret={secret}\nscopes={','.join(api_key.scopes)}")
        if api_key.ip_allowlist:
            self.stdout.write(f"ip_allowlist={','.join(api_key.ip_allowlist)}")
