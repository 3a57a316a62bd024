from django.apps import AppConfig


class ReportingConfig(AppConfig):
    """The marketer's dashboard and a campaign's analytics: reads of every other app, written by none."""

    default_auto_field = "django.db.models.BigAutoField"
    name = "reporting"
    verbose_name = "Reporting"
