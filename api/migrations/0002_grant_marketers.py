from django.db import migrations

ACTIONS = ("view", "add", "change")  # no delete: a token is revoked, and its row kept


def grant_marketers(apps, schema_editor):
    """Marketers make and revoke API tokens of their own."""
    from django.contrib.auth.management import create_permissions

    app_config = apps.get_app_config("api")
    app_config.models_module = True
    create_permissions(app_config, apps=apps, verbosity=0)
    app_config.models_module = None
    group = apps.get_model("auth", "Group").objects.filter(name="Marketers").first()
    if group is None:
        return
    Permission = apps.get_model("auth", "Permission")
    group.permissions.add(
        *Permission.objects.filter(content_type__app_label="api", codename__in=[f"{a}_apitoken" for a in ACTIONS])
    )


class Migration(migrations.Migration):
    dependencies = [
        ("api", "0001_initial"),
        ("accounts", "0002_marketers_group"),
    ]

    operations = [migrations.RunPython(grant_marketers, migrations.RunPython.noop)]
