from django.apps import AppConfig


class SendingConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "sending"

    def ready(self) -> None:
        from sending import receivers  # noqa: F401  (connects the signal receivers)
