# The in-flight mark of the lease fence, and the index the analytics page counts possible duplicates with.

import importlib

from django.db import migrations, models


def reinstall_sqlite_tally_triggers(apps, schema_editor):
    """SQLite adds (and removes) the column by rebuilding the email table, which drops its triggers:
    they are put back as 0007 froze them (the triggers have not changed since). PostgreSQL keeps them."""
    if schema_editor.connection.vendor != "sqlite":
        return
    frozen = importlib.import_module("campaigns.migrations.0007_fewer_email_indexes")
    frozen.reinstall_tally_triggers(apps, schema_editor)


class Migration(migrations.Migration):

    dependencies = [
        ('campaigns', '0019_importjob_read_in_worker'),
    ]

    operations = [
        migrations.RunPython(migrations.RunPython.noop, reinstall_sqlite_tally_triggers),
        migrations.AddField(
            model_name='email',
            name='in_flight',
            field=models.BooleanField(db_default=False, default=False),
        ),
        migrations.RunPython(reinstall_sqlite_tally_triggers, migrations.RunPython.noop),
        migrations.AddIndex(
            model_name='email',
            index=models.Index(condition=models.Q(('possible_duplicate', True)), fields=['campaign'], name='email_possible_duplicate'),
        ),
    ]
