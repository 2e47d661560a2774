"""The two system accounts: fees collected, and the outside world (deposits and withdrawals)."""

from django.db import migrations


def create_system_accounts(apps, schema_editor):
    User = apps.get_model("accounts", "User")
    for username, kind in (("_fees", "fees"), ("_external", "external")):
        # "!" is an unusable password hash: nobody logs in as a system account.
        User.objects.get_or_create(kind=kind, defaults={"username": username, "is_active": False, "password": "!"})


class Migration(migrations.Migration):
    dependencies = [("accounts", "0002_initial")]

    operations = [migrations.RunPython(create_system_accounts, migrations.RunPython.noop)]
