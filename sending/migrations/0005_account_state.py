"""The sending engine's runtime state of each SMTP account moves to a row of its own
(sending_smtpaccountstate), which the admin never writes: saving an account's form can no longer race
the workers' writes. Every account's values are copied; a trigger gives every account inserted from
now on its state row, in the same statement (0006 then removes the columns from the account table).

The pause's start (paused_at) is new: the account row's updated_at, which the pause used to set,
stands for it on the accounts paused now.
"""

import django.db.models.deletion
from django.db import migrations, models

ACCOUNT, STATE = "accounts_smtpaccount", "sending_smtpaccountstate"
MOVED = (
    "learned_per_minute, observed_limit_per_minute, rate_note, rate_changed_at, last_throttled_at, next_send_at, "
    "paused_until, pause_reason, backoff_seconds, backoff_until, unreachable_since, last_connection_error, "
    "last_connection_error_at, last_tested_at, last_test_result"
)

COPY = (
    f"INSERT INTO {STATE} (account_id, {MOVED}, paused_at) "
    f"SELECT id, {MOVED}, CASE WHEN paused_until IS NOT NULL THEN updated_at END FROM {ACCOUNT}"
)
# Back to the account row (0006 reversed has put the columns back with their defaults).
COPY_BACK = (
    f"UPDATE {ACCOUNT} a SET ({MOVED}) = (SELECT {MOVED} FROM {STATE} s WHERE s.account_id = a.id) "
    f"WHERE EXISTS (SELECT 1 FROM {STATE} s WHERE s.account_id = a.id)"
)

# Row level: accounts are inserted one at a time, by people. The state's columns take their
# database defaults (db_default).
INSTALL_TRIGGER = [
    f"""CREATE FUNCTION {ACCOUNT}_state_row() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO {STATE} (account_id) VALUES (NEW.id) ON CONFLICT (account_id) DO NOTHING;
    RETURN NULL;
END
$$""",
    f"CREATE TRIGGER {ACCOUNT}_state_row AFTER INSERT ON {ACCOUNT} FOR EACH ROW EXECUTE FUNCTION {ACCOUNT}_state_row()",
]
DROP_TRIGGER = [
    f"DROP TRIGGER IF EXISTS {ACCOUNT}_state_row ON {ACCOUNT}",
    f"DROP FUNCTION IF EXISTS {ACCOUNT}_state_row()",
]


class Migration(migrations.Migration):

    # After the whole move of SmtpAccount to sending: a database migrated back to before the move
    # (where accounts' historical SmtpAccount still has the engine's columns) unapplies this too.
    dependencies = [
        ('sending', '0004_bounce_mailbox'),
        ('accounts', '0005_smtpaccount_moves_to_sending'),
        ('campaigns', '0023_smtp_account_moves_to_sending'),
        ('contacts', '0002_smtp_account_moves_to_sending'),
    ]

    operations = [
        migrations.CreateModel(
            name='SmtpAccountState',
            fields=[
                ('account', models.OneToOneField(on_delete=django.db.models.deletion.CASCADE, primary_key=True, related_name='state', serialize=False, to='sending.smtpaccount')),
                ('learned_per_minute', models.FloatField(blank=True, editable=False, null=True)),
                ('observed_limit_per_minute', models.PositiveIntegerField(blank=True, editable=False, null=True)),
                ('rate_note', models.TextField(blank=True, db_default='', default='', editable=False, verbose_name='why this rate')),
                ('rate_changed_at', models.DateTimeField(blank=True, editable=False, null=True)),
                ('last_throttled_at', models.DateTimeField(blank=True, editable=False, null=True)),
                ('next_send_at', models.DateTimeField(blank=True, editable=False, null=True)),
                ('paused_until', models.DateTimeField(blank=True, editable=False, null=True)),
                ('pause_reason', models.TextField(blank=True, db_default='', default='', editable=False)),
                ('paused_at', models.DateTimeField(blank=True, editable=False, null=True)),
                ('backoff_seconds', models.PositiveIntegerField(db_default=0, default=0, editable=False)),
                ('backoff_until', models.DateTimeField(blank=True, editable=False, null=True)),
                ('unreachable_since', models.DateTimeField(blank=True, editable=False, null=True)),
                ('last_connection_error', models.TextField(blank=True, db_default='', default='', editable=False)),
                ('last_connection_error_at', models.DateTimeField(blank=True, editable=False, null=True, verbose_name='last connection error at')),
                ('last_tested_at', models.DateTimeField(blank=True, editable=False, null=True)),
                ('last_test_result', models.TextField(blank=True, db_default='', default='', editable=False)),
            ],
            options={
                'verbose_name': 'SMTP account state',
            },
        ),
        migrations.RunSQL(COPY, COPY_BACK),
        migrations.RunSQL(INSTALL_TRIGGER, DROP_TRIGGER),
    ]
