from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("campaigns", "0016_segments"),
    ]

    operations = [
        migrations.AddField(
            model_name="campaign",
            name="recipients_cursor",
            field=models.BigIntegerField(blank=True, editable=False, null=True),
        ),
        migrations.AddField(
            model_name="campaign",
            name="recipients_expected",
            field=models.PositiveIntegerField(blank=True, editable=False, null=True),
        ),
    ]
