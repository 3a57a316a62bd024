from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils import timezone

from accounts.validators import validate_no_header_breaks
from sending import crypto
from sending.esp import Esp
from sending.headers import validate_custom_headers
from sending.verp import validate_bounce_address


class EncryptedPassword:
    """A password kept as a Fernet token (MultiFernet over FIELD_ENCRYPTION_KEYS, sending.crypto) in the
    model's `password` column; never the plain text."""

    password: str

    def set_password(self, raw_password: str) -> None:
        self.password = crypto.encrypt(raw_password) if raw_password else ""

    def get_password(self) -> str:
        return crypto.decrypt(self.password) if self.password else ""

    @property
    def has_password(self) -> bool:
        return bool(self.password)


class SmtpAccount(EncryptedPassword, models.Model):
    """What the marketer edits: the connection, the sender, the limits. The sending engine's runtime
    state is in the account's SmtpAccountState row (`account.state`), which the admin never writes."""

    class Security(models.TextChoices):
        NONE = "none", "None (plain text)"
        STARTTLS = "starttls", "STARTTLS"
        SSL = "ssl", "SSL/TLS (implicit)"

    class DkimAlgorithm(models.TextChoices):
        RSA = "rsa-sha256", "RSA 2048 (rsa-sha256)"
        ED25519 = "ed25519-sha256", "Ed25519 (ed25519-sha256)"

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
        default="",
        db_default="",  # rows written by code that predates the column (older migrations' models) get blank
        validators=[validate_no_header_breaks, validate_bounce_address],
        help_text=(
            "Where delivery reports go (for example bounces@mail.example.com). Each campaign message's "
            "envelope sender becomes bounces+token@…, so a late bounce names its email. Blank: off."
        ),
    )
    custom_headers = models.TextField(
        "headers",
        blank=True,
        validators=[validate_custom_headers],
        help_text="Headers of your own added to every campaign sent through this account, one a line, written "
        "Name: value (like X-Mailer-Team: news). The headers the product writes (From, To, Subject, Message-ID, "
        "Content-*, List-*, Feedback-ID...) cannot be set here; a campaign's header of the same name replaces it.",
    )
    # Conservative defaults: 15 a minute is one message every 4 seconds.
    max_per_minute = models.PositiveIntegerField(default=15, validators=[MinValueValidator(1)])
    max_per_hour = models.PositiveIntegerField(default=500, validators=[MinValueValidator(1)])
    max_per_day = models.PositiveIntegerField(default=2000, validators=[MinValueValidator(1)])
    batch_size = models.PositiveIntegerField(default=50, validators=[MinValueValidator(1), MaxValueValidator(500)])
    # DKIM (sending.dkim): written by sending.services (generate_dkim_key, set_dkim_signing), the
    # account page's DKIM panel and `manage.py dkim_key`, never by the account's form.
    dkim_enabled = models.BooleanField("signs with DKIM", default=False, editable=False)
    dkim_domain = models.CharField("DKIM domain", max_length=253, blank=True, editable=False)
    dkim_selector = models.CharField("DKIM selector", max_length=63, blank=True, editable=False)
    dkim_algorithm = models.CharField(
        "DKIM algorithm",
        max_length=20,
        choices=DkimAlgorithm.choices,
        default=DkimAlgorithm.RSA,
        editable=False,
    )
    # Fernet token of the PEM private key, like the password; never shown, exported or logged.
    dkim_private_key = models.TextField(blank=True, editable=False)
    dkim_key_created_at = models.DateTimeField("DKIM key made at", null=True, blank=True, editable=False)
    # The ESP relaying this account's mail: its messages carry the ESP's metadata header, and its
    # webhook (EspWebhook) reports their bounces, complaints and deliveries.
    esp = models.CharField(
        "ESP",
        max_length=20,
        choices=Esp.choices,
        blank=True,
        help_text="The email service this account sends through, for its bounce and complaint webhook. Blank: none.",
    )
    # The host of this account's tracking URLs (sending.tracking_domains), used once a check proved it
    # reaches this site: tracking_domain_verified_at, written by sending.tracking_domains only, like the
    # last check's time and error. One account per name: the name says whose links a request follows.
    tracking_domain = models.CharField(
        max_length=253,
        blank=True,
        default="",
        db_default="",
        help_text=(
            "A host name of yours, like links.example.com, for the links, open pixel and unsubscribe URLs of this "
            "account's messages. Point it by CNAME at this site's host, save, then check it below. Blank: "
            "this site's own address, shared with every other sender here."
        ),
    )
    tracking_domain_verified_at = models.DateTimeField(null=True, blank=True, editable=False)
    tracking_domain_checked_at = models.DateTimeField(null=True, blank=True, editable=False)
    tracking_domain_error = models.TextField(blank=True, default="", db_default="", editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["owner", "name"], name="smtpaccount_unique_name_per_owner"),
            models.UniqueConstraint(
                fields=["tracking_domain"],
                condition=~models.Q(tracking_domain=""),
                name="smtpaccount_unique_tracking_domain",
                violation_error_message="Another SMTP account already uses this tracking domain.",
            ),
        ]
        verbose_name = "SMTP account"
        # The accounts_ table: sending's migration 0001 adopts it in Django's state only, never copied.
        db_table = "accounts_smtpaccount"

    def __str__(self) -> str:
        return self.name

    def set_dkim_private_key(self, pem: str) -> None:
        self.dkim_private_key = crypto.encrypt(pem) if pem else ""

    def get_dkim_private_key(self) -> str:
        return crypto.decrypt(self.dkim_private_key) if self.dkim_private_key else ""

    @property
    def has_dkim_key(self) -> bool:
        return bool(self.dkim_private_key and self.dkim_domain and self.dkim_selector)

    @property
    def is_paused(self) -> bool:
        return self.state.is_paused

    @property
    def is_unreachable(self) -> bool:
        return self.state.is_unreachable


class SmtpAccountState(models.Model):
    """The sending engine's runtime state of one SMTP account: the pacing clock, the learned rate, a
    pause, an outage's backoff, the last connection test. Written only by sending.services,
    delivery.rate_limit (the pacing clock) and delivery.adaptive_rate (the learned rate), each with
    conditional UPDATEs; the admin shows it read-only, so saving the account's form never races them.

    Every account has exactly one: a trigger on the account table inserts it with the account, in
    the same statement, however the account is inserted (the ORM, bulk_create, raw SQL, loaddata;
    sending migration 0005). Its defaults are therefore the database's (db_default) as well.
    """

    # last_test_result while a connection test is queued or running (sending.services.start_connection_test).
    CONNECTION_TESTING = "Testing…"

    account = models.OneToOneField(SmtpAccount, primary_key=True, on_delete=models.CASCADE, related_name="state")
    # What the provider really allows, learned from its throttling replies (delivery.
    # adaptive_rate): sending runs at min(max_per_minute, learned_per_minute); None: at the maximum.
    learned_per_minute = models.FloatField(null=True, blank=True, editable=False)
    # What the server accepted in the minute before its last refusal: probing stays under it.
    observed_limit_per_minute = models.PositiveIntegerField(null=True, blank=True, editable=False)
    rate_note = models.TextField("why this rate", blank=True, default="", db_default="", editable=False)
    rate_changed_at = models.DateTimeField(null=True, blank=True, editable=False)
    last_throttled_at = models.DateTimeField(null=True, blank=True, editable=False)
    # The shared pacing clock: the earliest moment the next message may go out,
    # reserved message by message by every worker, so sends are evenly spaced.
    next_send_at = models.DateTimeField(null=True, blank=True, editable=False)
    paused_until = models.DateTimeField(null=True, blank=True, editable=False)
    pause_reason = models.TextField(blank=True, default="", db_default="", editable=False)
    # When the running pause began (the dashboard's activity feed).
    paused_at = models.DateTimeField(null=True, blank=True, editable=False)
    # Connection-level failures (refused, TLS handshake, timeout, dropped before MAIL): the
    # account rests backoff_seconds (doubling per failure, see services.back_off_account) until
    # backoff_until; unreachable_since is the first failure of the running outage.
    backoff_seconds = models.PositiveIntegerField(default=0, db_default=0, editable=False)
    backoff_until = models.DateTimeField(null=True, blank=True, editable=False)
    unreachable_since = models.DateTimeField(null=True, blank=True, editable=False)
    last_connection_error = models.TextField(blank=True, default="", db_default="", editable=False)
    last_connection_error_at = models.DateTimeField("last connection error at", null=True, blank=True, editable=False)
    last_tested_at = models.DateTimeField(null=True, blank=True, editable=False)
    last_test_result = models.TextField(blank=True, default="", db_default="", editable=False)

    class Meta:
        verbose_name = "SMTP account state"

    def __str__(self) -> str:
        return f"state of SMTP account {self.account_id}"

    @property
    def is_paused(self) -> bool:
        return self.paused_until is not None and self.paused_until > timezone.now()

    @property
    def is_unreachable(self) -> bool:
        return self.unreachable_since is not None


def validate_imap_folder(value: str) -> None:
    """An IMAP folder's name as the server spells it: printable ASCII (a name in another script is
    stored in modified UTF-7, which the server's folder list shows), no line breaks."""
    if not value or not all(" " <= character <= "~" for character in value):
        raise ValidationError(
            "Use the folder's IMAP name in printable ASCII characters (e.g. INBOX or INBOX/Bounces).",
            code="folder",
        )


class BounceMailbox(EncryptedPassword, models.Model):
    """The mailbox an SMTP account's bounces (DSNs to its VERP addresses) land in, read over IMAP or POP3
    (sending.mailbox). Its state fields are written by sending.services, never by a form."""

    # last_test_result while a mailbox test is queued or running (sending.services.start_mailbox_test).
    TESTING = "Testing…"
    owner_path = "account__owner"

    class Protocol(models.TextChoices):
        IMAP = "imap", "IMAP"
        POP3 = "pop3", "POP3"

    class Security(models.TextChoices):
        SSL = "ssl", "SSL/TLS (implicit)"
        STARTTLS = "starttls", "STARTTLS"

    account = models.OneToOneField(SmtpAccount, on_delete=models.CASCADE, related_name="bounce_mailbox")
    enabled = models.BooleanField(
        default=True, help_text="Read it every minute; clear to stop reading without losing the settings."
    )
    protocol = models.CharField(max_length=4, choices=Protocol.choices, default=Protocol.IMAP)
    host = models.CharField(max_length=255, validators=[validate_no_header_breaks])
    port = models.PositiveIntegerField(default=993, validators=[MinValueValidator(1), MaxValueValidator(65535)])
    security = models.CharField(max_length=10, choices=Security.choices, default=Security.SSL)
    username = models.CharField(max_length=255, validators=[validate_no_header_breaks])
    # Fernet token (MultiFernet over FIELD_ENCRYPTION_KEYS); never the plain password.
    password = models.TextField(blank=True, editable=False)
    folder = models.CharField(
        max_length=255,
        default="INBOX",
        validators=[validate_imap_folder],
        help_text="IMAP only: the folder the bounces arrive in. POP3 reads the inbox.",
    )
    last_checked_at = models.DateTimeField(null=True, blank=True, editable=False)
    last_error = models.TextField(blank=True, editable=False)
    last_error_at = models.DateTimeField(null=True, blank=True, editable=False)
    processed_count = models.PositiveBigIntegerField(default=0, editable=False)
    last_tested_at = models.DateTimeField(null=True, blank=True, editable=False)
    last_test_result = models.TextField(blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "bounce mailbox"
        verbose_name_plural = "bounce mailboxes"

    def __str__(self) -> str:
        return f"{self.get_protocol_display()} {self.username} on {self.host}:{self.port}"

    def clean(self) -> None:
        super().clean()
        # The destination guard's port rule, told at once rather than at the first read.
        if self.port and not settings.SMTP_ALLOW_PRIVATE_HOSTS and self.port not in settings.MAILBOX_ALLOWED_PORTS:
            allowed = ", ".join(str(port) for port in settings.MAILBOX_ALLOWED_PORTS)
            raise ValidationError({"port": f"Port {self.port} is not allowed for a mailbox; use one of {allowed}."})


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
