from django.apps import AppConfig


class BouncesConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "bounces"
    verbose_name = "Bounces and complaints"
