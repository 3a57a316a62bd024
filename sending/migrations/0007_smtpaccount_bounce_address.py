# An SMTP account's bounce address (sending.verp): blank, the default, leaves the envelope sender as it was.

import accounts.validators
import sending.verp
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('sending', '0006_remove_smtpaccount_engine_fields'),
    ]

    operations = [
        migrations.AddField(
            model_name='smtpaccount',
            name='bounce_address',
            field=models.EmailField(blank=True, db_default='', default='', help_text="Where delivery reports go (for example bounces@mail.example.com). Each campaign message's envelope sender becomes bounces+token@…, so a late bounce names its email. Blank: off.", max_length=254, validators=[accounts.validators.validate_no_header_breaks, sending.verp.validate_bounce_address]),
        ),
    ]
