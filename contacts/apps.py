from django.apps import AppConfig


class ContactsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "contacts"

    def ready(self):
        # Registers this app's Celery tasks in every process (a web process too): its services queue
        # them by registered name (current_app.tasks[...]), since contacts.tasks imports those services.
        from contacts import tasks  # noqa: F401
