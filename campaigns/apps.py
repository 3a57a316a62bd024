from django.apps import AppConfig


class CampaignsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "campaigns"
    verbose_name = "Campaigns"

    def ready(self):
        from campaigns import receivers  # noqa: F401  (connects the receivers; models must be loaded first)
