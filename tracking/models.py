from django.db import models

URL_MAX_LENGTH = 2048
USER_AGENT_MAX_LENGTH = 500


class Link(models.Model):
    """A URL of a campaign's HTML, stored once at send time; clicks redirect only here."""

    owner_path = "campaign__owner"

    campaign = models.ForeignKey("campaigns.Campaign", on_delete=models.CASCADE, related_name="links")
    url = models.URLField(max_length=URL_MAX_LENGTH)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        constraints = [models.UniqueConstraint(fields=["campaign", "url"], name="link_unique_url_per_campaign")]

    def __str__(self):
        return self.url


class Event(models.Model):
    class Kind(models.TextChoices):
        OPEN = "open", "Open"
        CLICK = "click", "Click"
        UNSUBSCRIBE = "unsubscribe", "Unsubscribe"
        # From a delivery report read in the bounce mailbox (bounces.services), after the server's 250.
        BOUNCE = "bounce", "Bounce"
        COMPLAINT = "complaint", "Complaint"

    owner_path = "campaign__owner"

    email = models.ForeignKey("campaigns.Email", on_delete=models.CASCADE, related_name="events")
    # Denormalised from email.campaign so activity feeds filter by owner without a join chain.
    campaign = models.ForeignKey("campaigns.Campaign", on_delete=models.CASCADE, related_name="events")
    kind = models.CharField(max_length=20, choices=Kind.choices)
    at = models.DateTimeField(auto_now_add=True)
    link = models.ForeignKey(Link, on_delete=models.SET_NULL, null=True, blank=True, related_name="events")
    user_agent = models.CharField(max_length=USER_AGENT_MAX_LENGTH, blank=True)
    is_machine = models.BooleanField(default=False)

    class Meta:
        ordering = ["-at"]
        indexes = [
            models.Index(fields=["campaign", "kind", "at"], name="event_campaign_kind_at"),
            models.Index(fields=["at"], name="event_at"),
            # The superuser's latest unsubscribes across every campaign.
            models.Index(fields=["kind", "at"], name="event_kind_at"),
        ]

    def __str__(self):
        return f"{self.kind} {self.email_id}"
