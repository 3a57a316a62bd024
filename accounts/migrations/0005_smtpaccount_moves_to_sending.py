"""SmtpAccount now lives in sending (sending 0001), on the same table: accounts forgets it in the
migration state only, once campaigns 0022 has pointed the foreign keys to sending."""

from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ("accounts", "0004_smtpaccount_learned_rate"),
        ("campaigns", "0023_smtp_account_moves_to_sending"),
        ("contacts", "0002_smtp_account_moves_to_sending"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[migrations.DeleteModel(name="SmtpAccount")],
            database_operations=[],
        ),
    ]
