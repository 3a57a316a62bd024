from django.db import migrations


def create_row(apps, schema_editor):
    # The dispatcher's lock is a conditional UPDATE on this single row.
    apps.get_model("campaigns", "DispatcherState").objects.get_or_create(pk=1)


class Migration(migrations.Migration):
    dependencies = [("campaigns", "0001_initial")]

    operations = [migrations.RunPython(create_row, migrations.RunPython.noop)]
