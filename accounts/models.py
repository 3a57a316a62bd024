import pytz
from django.conf import settings
from django.contrib.auth.models import AbstractUser
from django.db import models
from django.db.models import Q
from django.utils import timezone

from accounts.validators import validate_no_header_breaks

TIMEZONE_CHOICES = [(name, name) for name in pytz.common_timezones]
MARKETERS_GROUP = "Marketers"


class User(AbstractUser):
    timezone = models.CharField(max_length=64, choices=TIMEZONE_CHOICES, default="Asia/Kolkata")
    organization = models.CharField(max_length=200, blank=True, validators=[validate_no_header_breaks])
    postal_address = models.TextField(blank=True, help_text="Shown in the footer of every campaign email.")
    email_confirmed_at = models.DateTimeField(null=True, blank=True)
    approved_at = models.DateTimeField(null=True, blank=True)
    access_expires_at = models.DateTimeField(
        null=True, blank=True, help_text="After this moment the account can neither log in nor send."
    )

    class Meta(AbstractUser.Meta):
        swappable = "AUTH_USER_MODEL"

    @property
    def footer_postal_address(self) -> str:
        """The postal address every campaign footer carries: the user's own, else the operator's default
        (settings.DEFAULT_POSTAL_ADDRESS); "" when neither is set, and then the user may not send."""
        return self.postal_address.strip() or settings.DEFAULT_POSTAL_ADDRESS

    @property
    def access_expired(self):
        return self.access_expires_at is not None and self.access_expires_at <= timezone.now()

    def access_denied_reason(self):
        """Why this account may not log in or send, or '' when it may."""
        if not self.is_active:
            return "This account is deactivated."
        if self.is_superuser:
            return ""
        if self.access_expired:
            return "This account's access has expired. Ask an administrator to extend it."
        if self.email_confirmed_at is None:
            return "Confirm your email address first: follow the link we sent you."
        if self.approved_at is None:
            return "Your account is waiting for an administrator's approval."
        return ""

    @property
    def has_access(self):
        return self.access_denied_reason() == ""


def users_with_access_q(prefix: str = "") -> Q:
    """A Q over users (or, with prefix, a relation to them) who may log in and send."""
    p = prefix
    now = timezone.now()
    active = Q(**{f"{p}is_active": True})
    not_expired = Q(**{f"{p}access_expires_at__isnull": True}) | Q(**{f"{p}access_expires_at__gt": now})
    approved = Q(**{f"{p}approved_at__isnull": False, f"{p}email_confirmed_at__isnull": False})
    return active & (Q(**{f"{p}is_superuser": True}) | (approved & not_expired))
