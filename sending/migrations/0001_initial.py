"""SmtpAccount moves here from accounts. Its table stays accounts_smtpaccount, so the model is
created in the migration state only, and accounts 0005 removes it from accounts' state once
campaigns 0022 has pointed the foreign keys here.

Its content type is relabelled, not replaced: the permissions on it (the Marketers group's, given
in accounts 0002) and the admin's log entries about SMTP accounts stay attached.
"""

import django.core.validators
import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

import accounts.validators

MODEL = "smtpaccount"


def relabel_content_type(apps, schema_editor, *, old, new):
    ContentType = apps.get_model("contenttypes", "ContentType")
    LogEntry = apps.get_model("admin", "LogEntry")
    db = schema_editor.connection.alias
    moving = ContentType.objects.using(db).filter(app_label=old, model=MODEL).first()
    if moving is None:
        return
    # Code running before this migration (a web process of the new release) may have made the new
    # label's row already, for an admin log entry: its entries join the relabelled row.
    made_early = ContentType.objects.using(db).filter(app_label=new, model=MODEL).first()
    if made_early is not None:
        LogEntry.objects.using(db).filter(content_type=made_early).update(content_type=moving)
        made_early.delete()
    moving.app_label = new
    moving.save(using=db, update_fields=["app_label"])
    # Content types are cached per process: the relabelled row must not be looked up under its old label.
    ContentType.objects.clear_cache()


def content_type_to_sending(apps, schema_editor):
    relabel_content_type(apps, schema_editor, old="accounts", new="sending")


def content_type_to_accounts(apps, schema_editor):
    relabel_content_type(apps, schema_editor, old="sending", new="accounts")


class Migration(migrations.Migration):

    initial = True

    dependencies = [
        ("accounts", "0004_smtpaccount_learned_rate"),
        ("admin", "0003_logentry_add_action_flag_choices"),
        ("contenttypes", "0002_remove_content_type_name"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name='SmtpAccount',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('name', models.CharField(max_length=100, validators=[accounts.validators.validate_no_header_breaks])),
                        ('host', models.CharField(max_length=255, validators=[accounts.validators.validate_no_header_breaks])),
                        ('port', models.PositiveIntegerField(default=587, validators=[django.core.validators.MinValueValidator(1), django.core.validators.MaxValueValidator(65535)])),
                        ('security', models.CharField(choices=[('none', 'None (plain text)'), ('starttls', 'STARTTLS'), ('ssl', 'SSL/TLS (implicit)')], default='starttls', max_length=10)),
                        ('username', models.CharField(blank=True, max_length=255, validators=[accounts.validators.validate_no_header_breaks])),
                        ('password', models.TextField(blank=True, editable=False)),
                        ('from_email', models.EmailField(max_length=254, validators=[accounts.validators.validate_no_header_breaks])),
                        ('from_name', models.CharField(blank=True, max_length=200, validators=[accounts.validators.validate_no_header_breaks])),
                        ('reply_to', models.EmailField(blank=True, max_length=254, validators=[accounts.validators.validate_no_header_breaks])),
                        ('max_per_minute', models.PositiveIntegerField(default=15, validators=[django.core.validators.MinValueValidator(1)])),
                        ('max_per_hour', models.PositiveIntegerField(default=500, validators=[django.core.validators.MinValueValidator(1)])),
                        ('max_per_day', models.PositiveIntegerField(default=2000, validators=[django.core.validators.MinValueValidator(1)])),
                        ('batch_size', models.PositiveIntegerField(default=50, validators=[django.core.validators.MinValueValidator(1), django.core.validators.MaxValueValidator(500)])),
                        ('learned_per_minute', models.FloatField(blank=True, editable=False, null=True)),
                        ('observed_limit_per_minute', models.PositiveIntegerField(blank=True, editable=False, null=True)),
                        ('rate_note', models.TextField(blank=True, editable=False, verbose_name='why this rate')),
                        ('rate_changed_at', models.DateTimeField(blank=True, editable=False, null=True)),
                        ('last_throttled_at', models.DateTimeField(blank=True, editable=False, null=True)),
                        ('next_send_at', models.DateTimeField(blank=True, editable=False, null=True)),
                        ('paused_until', models.DateTimeField(blank=True, null=True)),
                        ('pause_reason', models.TextField(blank=True)),
                        ('backoff_seconds', models.PositiveIntegerField(default=0, editable=False)),
                        ('backoff_until', models.DateTimeField(blank=True, editable=False, null=True)),
                        ('unreachable_since', models.DateTimeField(blank=True, editable=False, null=True)),
                        ('last_connection_error', models.TextField(blank=True, editable=False)),
                        ('last_connection_error_at', models.DateTimeField(blank=True, editable=False, null=True, verbose_name='last connection error at')),
                        ('last_tested_at', models.DateTimeField(blank=True, null=True)),
                        ('last_test_result', models.TextField(blank=True)),
                        ('created_at', models.DateTimeField(auto_now_add=True)),
                        ('updated_at', models.DateTimeField(auto_now=True)),
                        ('owner', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='smtp_accounts', to=settings.AUTH_USER_MODEL)),
                    ],
                    options={
                        'verbose_name': 'SMTP account',
                        'db_table': 'accounts_smtpaccount',
                        'ordering': ['name'],
                        'constraints': [models.UniqueConstraint(fields=('owner', 'name'), name='smtpaccount_unique_name_per_owner')],
                    },
                ),
            ],
            database_operations=[],
        ),
        migrations.RunPython(content_type_to_sending, content_type_to_accounts),
    ]
