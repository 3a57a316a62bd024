from django.apps import AppConfig


class DeliveryConfig(AppConfig):
    """The sending engine: the dispatcher's tick, batches sent over SMTP, pacing and learned rates, leases."""

    default_auto_field = "django.db.models.BigAutoField"
    name = "delivery"
    verbose_name = "Delivery"
