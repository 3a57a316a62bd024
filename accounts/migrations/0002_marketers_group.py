"""The Marketers group with exactly the model permissions a marketer needs."""

from django.db import migrations

# (app_label, model, actions)
MARKETER_PERMISSIONS = [
    ("accounts", "smtpaccount", ("view", "add", "change", "delete")),
    ("campaigns", "contact", ("view", "add", "change", "delete")),
    ("campaigns", "contactlist", ("view", "add", "change", "delete")),
    ("campaigns", "emailtemplate", ("view", "add", "change", "delete")),
    ("campaigns", "campaign", ("view", "add", "change", "delete")),
    ("campaigns", "email", ("view",)),
    ("tracking", "link", ("view",)),
    ("tracking", "event", ("view",)),
]


def create_group(apps, schema_editor):
    from django.contrib.auth.management import create_permissions

    # Permissions are normally created after migrate; make sure they exist now.
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None

    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    group, _ = Group.objects.get_or_create(name="Marketers")
    wanted = []
    for app_label, model, actions in MARKETER_PERMISSIONS:
        for action in actions:
            wanted.append(
                Permission.objects.get(content_type__app_label=app_label, codename=f"{action}_{model}")
            )
    group.permissions.set(wanted)


def remove_group(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(name="Marketers").delete()


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0001_initial"),
        ("campaigns", "0001_initial"),
        ("tracking", "0001_initial"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("auth", "0012_alter_user_first_name_max_length"),
    ]

    operations = [migrations.RunPython(create_group, remove_group)]
