"""``manage.py reencrypt_secrets``: rewrite every stored secret under the first ``SECRETS_ENCRYPTION_KEYS`` key.

The step in the middle of a key rotation (docs/operations.md): put the new key
first in ``SECRETS_ENCRYPTION_KEYS`` and restart, run this, then remove the
old key.  Safe to interrupt and run again.
"""

from django.core.management.base import BaseCommand

from accounts.services import secrets_reencrypt


class Command(BaseCommand):
    help = "Re-encrypt every API-key and two-factor secret with the first key of SECRETS_ENCRYPTION_KEYS."

    def handle(self, *args, **options) -> None:
        def progress(kind: str, done: int, total: int) -> None:
            self.stdout.write(f"  {kind}: {done}/{total}")

        rewritten = secrets_reencrypt(progress=progress)
        self.stdout.write(
            self.style.SUCCESS(
                f"Re-encrypted {rewritten['api_keys']} API key secrets and "
                f"{rewritten['two_factor_devices']} two-factor secrets; the older keys can now be removed."
            )
        )
