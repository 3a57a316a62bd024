from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils import timezone

from accounts.validators import validate_no_header_breaks
from sending import crypto
from sending.esp import Esp
from sending.verp import validate_bounce_address


class SmtpAccount(models.Model):
    # last_test_result while a connection test is queued or running (sending.services.start_connection_test).
    CONNECTION_TESTING = "Testing…"

    class Security(models.TextChoices):
        NONE = "none", "None (plain text)"
        STARTTLS = "starttls", "STARTTLS"
        SSL = "ssl", "SSL/TLS (implicit)"

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="smtp_accounts")
    name = models.CharField(max_length=100, validators=[validate_no_header_breaks])
    host = models.CharField(max_length=255, validators=[validate_no_header_breaks])
    port = models.PositiveIntegerField(default=587, validators=[MinValueValidator(1), MaxValueValidator(65535)])
    security = models.CharField(max_length=10, choices=Security.choices, default=Security.STARTTLS)
    username = models.CharField(max_length=255, blank=True, validators=[validate_no_header_breaks])
    # Fernet token (MultiFernet over FIELD_ENCRYPTION_KEYS); never the plain password.
    password = models.TextField(blank=True, editable=False)
    from_email = models.EmailField(validators=[validate_no_header_breaks])
    from_name = models.CharField(max_length=200, blank=True, validators=[validate_no_header_breaks])
    reply_to = models.EmailField(blank=True, validators=[validate_no_header_breaks])
    # Blank: campaign messages go out with from_email as envelope sender. Set: with a VERP address
    # on this one (sending.verp), whose mailbox the bounce reader empties.
    bounce_address = models.EmailField(
        blank=True,
        validators=[validate_no_header_breaks, validate_bounce_address],
        help_text=(
            "Where delivery reports go (for example bounces@mail.example.com). Each campaign message's "
            "envelope sender becomes bounces+token@…, so a late bounce names its email. Blank: off."
        ),
    )
    # Conservative defaults: 15 a minute is one message every 4 seconds.
    max_per_minute = models.PositiveIntegerField(default=15, validators=[MinValueValidator(1)])
    max_per_hour = models.PositiveIntegerField(default=500, validators=[MinValueValidator(1)])
    max_per_day = models.PositiveIntegerField(default=2000, validators=[MinValueValidator(1)])
    batch_size = models.PositiveIntegerField(default=50, validators=[MinValueValidator(1), MaxValueValidator(500)])
    # What the provider really allows, learned from its throttling replies (delivery.
    # adaptive_rate): sending runs at min(max_per_minute, learned_per_minute); None: at the maximum.
    learned_per_minute = models.FloatField(null=True, blank=True, editable=False)
    # What the server accepted in the minute before its last refusal: probing stays under it.
    observed_limit_per_minute = models.PositiveIntegerField(null=True, blank=True, editable=False)
    rate_note = models.TextField("why this rate", blank=True, editable=False)
    rate_changed_at = models.DateTimeField(null=True, blank=True, editable=False)
    last_throttled_at = models.DateTimeField(null=True, blank=True, editable=False)
    # The shared pacing clock: the earliest moment the next message may go out,
    # reserved message by message by every worker, so sends are evenly spaced.
    next_send_at = models.DateTimeField(null=True, blank=True, editable=False)
    paused_until = models.DateTimeField(null=True, blank=True)
    pause_reason = models.TextField(blank=True)
    # Connection-level failures (refused, TLS handshake, timeout, dropped before MAIL): the
    # account rests backoff_seconds (doubling per failure, see services.back_off_account) until
    # backoff_until; unreachable_since is the first failure of the running outage.
    backoff_seconds = models.PositiveIntegerField(default=0, editable=False)
    backoff_until = models.DateTimeField(null=True, blank=True, editable=False)
    unreachable_since = models.DateTimeField(null=True, blank=True, editable=False)
    last_connection_error = models.TextField(blank=True, editable=False)
    last_connection_error_at = models.DateTimeField("last connection error at", null=True, blank=True, editable=False)
    last_tested_at = models.DateTimeField(null=True, blank=True)
    last_test_result = models.TextField(blank=True)
    # The ESP relaying this account's mail: its messages carry the ESP's metadata header, and its
    # webhook (EspWebhook) reports their bounces, complaints and deliveries.
    esp = models.CharField(
        "ESP",
        max_length=20,
        choices=Esp.choices,
        blank=True,
        help_text="The email service this account sends through, for its bounce and complaint webhook. Blank: none.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["owner", "name"], name="smtpaccount_unique_name_per_owner"),
        ]
        verbose_name = "SMTP account"
        # The accounts_ table: sending's migration 0001 adopts it in Django's state only, never copied.
        db_table = "accounts_smtpaccount"

    def __str__(self) -> str:
        return self.name

    def set_password(self, raw_password: str) -> None:
        self.password = crypto.encrypt(raw_password) if raw_password else ""

    def get_password(self) -> str:
        return crypto.decrypt(self.password) if self.password else ""

    @property
    def has_password(self) -> bool:
        return bool(self.password)

    @property
    def is_paused(self) -> bool:
        return self.paused_until is not None and self.paused_until > timezone.now()

    @property
    def is_unreachable(self) -> bool:
        return self.unreachable_since is not None


class EspWebhook(models.Model):
    """Where an account's ESP posts its events (/esp/<token>/) and the secrets it must show.

    Written by sending.esp_webhooks only. The token names the account in the URL; the basic-auth
    secret (user ESP_WEBHOOK_USER) is ours, generated; the signing key is the ESP's, typed by the
    marketer. Both secrets are Fernet tokens (sending.crypto), never the plain text.
    """

    account = models.OneToOneField(SmtpAccount, on_delete=models.CASCADE, related_name="esp_webhook")
    token = models.CharField(max_length=64, unique=True)
    secret = models.TextField()
    signing_key = models.TextField(blank=True)
    events_received = models.PositiveIntegerField(default=0)
    last_event_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = "ESP webhook"

    def __str__(self) -> str:
        return f"ESP webhook of {self.account}"

    def get_secret(self) -> str:
        return crypto.decrypt(self.secret)

    def get_signing_key(self) -> str:
        return crypto.decrypt(self.signing_key) if self.signing_key else ""

    @property
    def has_signing_key(self) -> bool:
        return bool(self.signing_key)
