from django.db import migrations, models


def factor_to_learned_rate(apps, schema_editor):
    # An account slowed by the old halving keeps its slower rate, now as a learned one.
    SmtpAccount = apps.get_model("accounts", "SmtpAccount")
    for account in SmtpAccount.objects.filter(throttle_factor__lt=1.0):
        account.learned_per_minute = max(1.0, account.max_per_minute * account.throttle_factor)
        account.rate_note = "slowed after throttling (before the rate was learned)"
        account.save(update_fields=["learned_per_minute", "rate_note"])


class Migration(migrations.Migration):

    dependencies = [
        ("accounts", "0003_smtpaccount_connection_backoff"),
    ]

    operations = [
        migrations.AddField(
            model_name="smtpaccount",
            name="learned_per_minute",
            field=models.FloatField(blank=True, editable=False, null=True),
        ),
        migrations.AddField(
            model_name="smtpaccount",
            name="observed_limit_per_minute",
            field=models.PositiveIntegerField(blank=True, editable=False, null=True),
        ),
        migrations.AddField(
            model_name="smtpaccount",
            name="rate_note",
            field=models.TextField(blank=True, editable=False, verbose_name="why this rate"),
        ),
        migrations.AddField(
            model_name="smtpaccount",
            name="rate_changed_at",
            field=models.DateTimeField(blank=True, editable=False, null=True),
        ),
        migrations.AddField(
            model_name="smtpaccount",
            name="last_throttled_at",
            field=models.DateTimeField(blank=True, editable=False, null=True),
        ),
        migrations.RunPython(factor_to_learned_rate, migrations.RunPython.noop),
        migrations.RemoveField(model_name="smtpaccount", name="throttle_factor"),
    ]
