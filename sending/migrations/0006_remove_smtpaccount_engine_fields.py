"""The engine's fields leave the account table: 0005 copied them to the account's state row."""

from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ('sending', '0005_account_state'),
    ]

    operations = [
        migrations.RemoveField(
            model_name='smtpaccount',
            name='backoff_seconds',
        ),
        migrations.RemoveField(
            model_name='smtpaccount',
            name='backoff_until',
        ),
        migrations.RemoveField(
            model_name='smtpaccount',
            name='last_connection_error',
        ),
        migrations.RemoveField(
            model_name='smtpaccount',
            name='last_connection_error_at',
        ),
        migrations.RemoveField(
            model_name='smtpaccount',
            name='last_test_result',
        ),
        migrations.RemoveField(
            model_name='smtpaccount',
            name='last_tested_at',
        ),
        migrations.RemoveField(
            model_name='smtpaccount',
            name='last_throttled_at',
        ),
        migrations.RemoveField(
            model_name='smtpaccount',
            name='learned_per_minute',
        ),
        migrations.RemoveField(
            model_name='smtpaccount',
            name='next_send_at',
        ),
        migrations.RemoveField(
            model_name='smtpaccount',
            name='observed_limit_per_minute',
        ),
        migrations.RemoveField(
            model_name='smtpaccount',
            name='pause_reason',
        ),
        migrations.RemoveField(
            model_name='smtpaccount',
            name='paused_until',
        ),
        migrations.RemoveField(
            model_name='smtpaccount',
            name='rate_changed_at',
        ),
        migrations.RemoveField(
            model_name='smtpaccount',
            name='rate_note',
        ),
        migrations.RemoveField(
            model_name='smtpaccount',
            name='unreachable_since',
        ),
    ]
