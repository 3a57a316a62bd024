"""The subscription form's foreign key to SmtpAccount follows it to sending; the table is unchanged."""

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('contacts', '0001_initial'),
        ('sending', '0001_initial'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name='subscriptionform',
                    name='smtp_account',
                    field=models.ForeignKey(help_text='Sends the confirmation emails (single opt-in forms too: a suppressed contact confirms by email).', on_delete=django.db.models.deletion.PROTECT, related_name='subscription_forms', to='sending.smtpaccount', verbose_name='SMTP account'),
                ),
            ],
            database_operations=[],
        ),
    ]
