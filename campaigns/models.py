import re
from datetime import date
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q
from django.utils.functional import cached_property

from accounts.validators import validate_no_header_breaks
from contacts.models import Contact, ContactList
from sending.headers import validate_custom_headers

CUSTOM_HEADERS_HELP = (
    "Headers of your own, one a line, written Name: value (like X-Campaign-Code: spring-26). "
    "The headers the product writes (From, To, Subject, Message-ID, Content-*, List-*, Feedback-ID...) "
    "cannot be set here."
)


class EmailTemplate(models.Model):
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="email_templates")
    name = models.CharField(max_length=200)
    subject = models.CharField(max_length=255, blank=True, validators=[validate_no_header_breaks])
    body_html = models.TextField(blank=True)
    body_text = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["owner", "name"], name="emailtemplate_unique_name_per_owner")]

    def __str__(self):
        return self.name


class Campaign(models.Model):
    class Status(models.TextChoices):
        DRAFT = "draft", "Draft"
        SCHEDULED = "scheduled", "Scheduled"
        SENDING = "sending", "Sending"
        PAUSED = "paused", "Paused"
        COMPLETED = "completed", "Completed"
        CANCELLED = "cancelled", "Cancelled"

    class SourceRule(models.TextChoices):
        NONE = "", "—"
        NOT_OPENED = "not_opened", "Received it and did not open it"

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="campaigns")
    name = models.CharField(max_length=200)
    smtp_account = models.ForeignKey(
        "sending.SmtpAccount", on_delete=models.PROTECT, null=True, blank=True, related_name="campaigns"
    )
    lists = models.ManyToManyField(ContactList, related_name="campaigns", blank=True)
    # Lists and segments together: a contact in both, or in several, gets one email (ledger.materialise_statement).
    # Annotated because django-stubs infers no model from a name in a string (typeddjango/django-stubs#1802).
    segments: "models.ManyToManyField[Segment, Any]" = models.ManyToManyField(
        "Segment", related_name="campaigns", blank=True
    )
    # A resend: its audience is the source campaign's recipients picked by source_rule, as they are at
    # its start (ledger.materialise_statement), instead of its lists. Set by lifecycle.resend_to_non_openers.
    # No database constraint nor index, like CampaignTally's key: deleting a source sets this to NULL through
    # the ORM, and a stale id would only match no email row.
    source_campaign = models.ForeignKey(
        "self",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        editable=False,
        related_name="resends",
        db_constraint=False,
        db_index=False,
        verbose_name="resend of",
    )
    source_rule = models.CharField(max_length=20, choices=SourceRule.choices, blank=True, default="", editable=False)
    subject = models.CharField(max_length=255, blank=True, validators=[validate_no_header_breaks])
    body_html = models.TextField(blank=True)
    body_text = models.TextField(blank=True, help_text="Leave blank to derive the text part from the HTML.")
    text_only = models.BooleanField(
        "plain text only",
        default=False,
        help_text="Send the text body alone: no HTML, no open pixel, links as plain URLs. "
        "A campaign without an HTML body is sent this way too.",
    )
    custom_headers = models.TextField(
        "headers",
        blank=True,
        validators=[validate_custom_headers],
        help_text=CUSTOM_HEADERS_HELP + " They replace the SMTP account's headers of the same name.",
    )
    track_opens = models.BooleanField(default=True)
    track_clicks = models.BooleanField(default=True)
    # Written only by campaigns.services, never by admin forms.
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.DRAFT, editable=False)
    scheduled_at = models.DateTimeField(null=True, blank=True, help_text="Entered in your own time zone.")
    status_reason = models.TextField(blank=True, editable=False)
    started_at = models.DateTimeField(null=True, blank=True, editable=False)
    completed_at = models.DateTimeField(null=True, blank=True, editable=False)
    # While its recipients are being written (campaigns.services.lifecycle.prepare_recipients), in
    # chunks that each commit: the last contact id covered so far. None when none are being written.
    recipients_cursor = models.BigIntegerField(null=True, blank=True, editable=False)
    # How many recipients the preparation expects (counted when it began), for "n of N".
    recipients_expected = models.PositiveIntegerField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["status", "scheduled_at"], name="campaign_status_due"),
            models.Index(fields=["owner", "status"], name="campaign_owner_status"),
        ]

    def __str__(self):
        return self.name

    @property
    def is_preparing(self):
        return self.recipients_cursor is not None

    @property
    def is_text_only(self) -> bool:
        """Sent as one text/plain part (delivery.message): chosen, or no HTML body written."""
        return self.text_only or not (self.body_html or "").strip()

    @cached_property
    def first_list(self) -> ContactList | None:
        """The list its List-Id names: its first list (a resend: its source's); None for segments alone.
        Read once per instance: the sender loads its campaigns afresh for every batch."""
        campaign_id = self.source_campaign_id or self.pk
        return ContactList.objects.filter(campaigns=campaign_id).order_by("pk").only("pk", "name").first()

    def clean(self):
        if self.smtp_account_id and self.owner_id and self.smtp_account.owner_id != self.owner_id:
            raise ValidationError({"smtp_account": "This SMTP account belongs to someone else."})


class CampaignTestSend(models.Model):
    """A test send of a campaign (delivery.previews): asked for on its preview page, sent by a
    Celery task (a slow server must not hold the web request), its outcome shown on that page.
    Never an Email row: tests are not counted."""

    owner_path = "campaign__owner"
    MAX_ADDRESSES = 10  # per test send

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="test_sends")
    # Whose variables fill the message; None: a sample recipient (or the contact was deleted since).
    contact = models.ForeignKey(Contact, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    addresses = models.JSONField(default=list)
    requested_at = models.DateTimeField()
    # Set when a worker takes it: a redelivered task finds it taken and sends nothing twice.
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    sent = models.JSONField(default=list, blank=True)
    refused = models.JSONField(default=list, blank=True)  # [[address, the server's answer], ...]
    error = models.TextField(blank=True)  # why nothing could be sent

    class Meta:
        ordering = ["-requested_at", "-id"]
        indexes = [models.Index(fields=["campaign", "requested_at"], name="testsend_campaign_requested")]

    def __str__(self):
        return f"test of {self.campaign_id} to {', '.join(self.addresses)}"


class LinkCheckRun(models.Model):
    """One check of a campaign's links (delivery.link_check), asked for on its "Review and send" page
    and run by a worker, which records one LinkCheckResult per distinct URL as it goes.

    Where it is comes from its times: requested, started (a worker took it), finished; a newer run of
    the same campaign supersedes it (`superseded_at`), and its worker stops before its next link. At
    most one run per campaign is open (neither finished nor superseded): the constraint decides a race.
    """

    owner_path = "campaign__owner"

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="link_check_runs")
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    requested_at = models.DateTimeField()
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    superseded_at = models.DateTimeField(null=True, blank=True)
    # The campaign's last change when the run was asked for: a later change makes the results stale.
    campaign_updated_at = models.DateTimeField(null=True, blank=True)
    urls_found = models.PositiveIntegerField(default=0)
    # Whose variables filled the URLs that hold some ("" when none did): the sample recipient.
    sample_recipient = models.CharField(max_length=254, blank=True)
    error = models.TextField(blank=True)  # why no link could be checked (the body does not render)

    class Meta:
        ordering = ["-requested_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["campaign"],
                condition=Q(finished_at__isnull=True, superseded_at__isnull=True),
                name="linkcheck_one_open_per_campaign",
            )
        ]
        indexes = [models.Index(fields=["campaign", "requested_at"], name="linkcheck_campaign_requested")]

    def __str__(self):
        return f"link check {self.pk} of campaign {self.campaign_id}"

    @property
    def is_open(self) -> bool:
        return self.finished_at is None and self.superseded_at is None


class LinkCheckResult(models.Model):
    """What one distinct URL of a campaign answered in a LinkCheckRun."""

    class Level(models.TextChoices):
        OK = "ok", "OK"
        WARNING = "warning", "Warning"
        ERROR = "error", "Error"

    owner_path = "run__campaign__owner"

    run = models.ForeignKey(LinkCheckRun, on_delete=models.CASCADE, related_name="results")
    url = models.TextField()
    position = models.PositiveIntegerField(default=0)  # the link's place among the message's links
    # The URL holds a variable and was checked as rendered for the run's sample recipient.
    personalized = models.BooleanField(default=False)
    level = models.CharField(max_length=10, choices=Level.choices)
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)  # the last answer's, None: no answer
    final_url = models.TextField(blank=True)  # where the redirects led ("" without an answer)
    redirects = models.PositiveSmallIntegerField(default=0)
    method = models.CharField(max_length=8, blank=True)  # HEAD, or GET where HEAD was refused
    message = models.TextField()  # what the marketer reads
    checked_at = models.DateTimeField()

    class Meta:
        ordering = ["id"]
        constraints = [models.UniqueConstraint(fields=["run", "url"], name="linkcheck_result_one_per_url")]

    def __str__(self):
        return f"{self.url}: {self.message}"


class CampaignEvent(models.Model):
    """One change of a campaign's status, written with it by campaigns.services.lifecycle.

    The campaign's history (the dashboard's activity feed reads it): who or what moved it
    (acting_user None: the system, the dispatcher or a worker), from which status, and why.
    """

    owner_path = "campaign__owner"

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="status_events")
    at = models.DateTimeField()
    from_status = models.CharField(max_length=20, choices=Campaign.Status.choices)
    to_status = models.CharField(max_length=20, choices=Campaign.Status.choices)
    acting_user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        help_text="Blank: the system.",
    )
    reason = models.TextField(blank=True)

    class Meta:
        ordering = ["-at", "-id"]
        indexes = [
            # A marketer's feed: the latest events of their campaigns.
            models.Index(fields=["campaign", "at"], name="campaignevent_campaign_at"),
            # The superuser's feed across every campaign.
            models.Index(fields=["at"], name="campaignevent_at"),
        ]

    def __str__(self):
        return f"{self.from_status} -> {self.to_status}"


class Email(models.Model):
    """One row per (campaign, recipient): the ledger the sending engine works from."""

    owner_path = "campaign__owner"

    class Status(models.TextChoices):
        PENDING = "pending", "Pending"
        QUEUED = "queued", "Queued"
        SENT = "sent", "Sent"
        DEFERRED = "deferred", "Deferred (retrying)"
        FAILED = "failed", "Failed"
        # A campaign cancelled, a recipient removed or unsubscribed before
        # sending. Final, like sent and failed.
        CANCELLED = "cancelled", "Cancelled"

    class FailureClass(models.TextChoices):
        NONE = "", "—"
        THROTTLED = "throttled", "Throttled out"
        BOUNCED = "bounced", "Bounced"
        REJECTED = "rejected", "Rejected"
        ACCOUNT = "account", "Account problem"
        UNKNOWN = "unknown", "Unknown"
        ERROR = "error", "Error while sending"

    class BounceKind(models.TextChoices):
        NONE = "", "—"
        HARD = "hard", "Hard bounce"
        SOFT = "soft", "Soft bounce"

    FINAL_STATUSES = (Status.SENT, Status.FAILED, Status.CANCELLED)

    # No index of its own: (campaign, to_email) and (campaign, id) lead with it already.
    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="emails", db_index=False)
    contact = models.ForeignKey(Contact, on_delete=models.SET_NULL, null=True, blank=True, related_name="emails")
    to_email = models.EmailField(max_length=254)
    to_name = models.CharField(max_length=200, blank=True)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PENDING)
    # The counts below are plain integers, without the CHECK (>= 0) of Django's Positive fields:
    # PostgreSQL prepares every CHECK of the table again for each UPDATE, and the sender updates one
    # row per message (measured in BENCHMARKS.md). Only the ledger and tracking write them, each by
    # adding 1 to a value that starts at 0; smtp_code is a reply's three digits.
    attempts = models.IntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    batch_id = models.UUIDField(null=True, blank=True)
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    message_id = models.CharField(max_length=255, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    smtp_code = models.SmallIntegerField(null=True, blank=True)
    smtp_response = models.TextField(blank=True)
    failure_class = models.CharField(max_length=20, choices=FailureClass.choices, blank=True, default="")
    first_opened_at = models.DateTimeField(null=True, blank=True)
    open_count = models.IntegerField(default=0)
    machine_open = models.BooleanField(default=False)
    first_clicked_at = models.DateTimeField(null=True, blank=True)
    click_count = models.IntegerField(default=0)
    unsubscribed_at = models.DateTimeField(null=True, blank=True)
    # What a delivery report said after the server's 250 (bounces.services): the row stays sent,
    # these record the report. A hard bounce replaces a soft one; nothing else is overwritten.
    # (Defaults in the database too: the ledger's INSERT ... SELECT names only the columns it fills.)
    bounced_at = models.DateTimeField(null=True, blank=True)
    bounce_kind = models.CharField(max_length=10, choices=BounceKind.choices, blank=True, default="", db_default="")
    bounce_status = models.CharField(max_length=32, blank=True, default="", db_default="")  # a DSN's Status: 5.1.1
    bounce_text = models.TextField(blank=True, default="", db_default="")  # its Diagnostic-Code, or the report's words
    complained_at = models.DateTimeField(null=True, blank=True)  # an ARF (spam) complaint
    # An earlier attempt may have been delivered (the connection dropped after DATA, or the row was
    # taken back from a worker that had begun sending it): a send of this row may be a second copy.
    possible_duplicate = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    @property
    def contact_attributes(self):
        """The contact's columns the message's personal variables read ({} without a contact)."""
        return self.contact.attributes if self.contact_id else {}

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["campaign", "to_email"], name="email_unique_recipient_per_campaign"),
        ]
        indexes = [
            # Dispatcher: claim a campaign's pending rows oldest first.
            models.Index(fields=["campaign", "id"], condition=Q(status="pending"), name="email_pending_claim"),
            # Dispatcher: deferred rows that are due, queued rows whose lease expired.
            models.Index(fields=["next_attempt_at"], condition=Q(status="deferred"), name="email_deferred_due"),
            models.Index(fields=["lease_expires_at"], condition=Q(status="queued"), name="email_queued_lease"),
            # A worker's rows by batch. On status='queued' like the lease index, so that PostgreSQL
            # never reads a batch through the lease index (every queued row, filtered), as it
            # may with statistics taken while nothing was queued: each batch would read every
            # queued row.
            models.Index(fields=["batch_id"], condition=Q(status="queued"), name="email_batch_queued"),
            # Rate limits: what an account's campaigns sent in the last minute, hour and day.
            # (The dashboards' counts come from CampaignTally: every index here is written again
            # whenever a row changes status, so only the ones something reads are kept.)
            models.Index(fields=["campaign", "sent_at"], condition=Q(status="sent"), name="email_campaign_sent"),
            # The analytics page's recipient table (a campaign's rows in id order) and the latest failures.
            models.Index(fields=["campaign", "id"], name="email_campaign_id_order"),
            models.Index(fields=["campaign", "updated_at"], condition=Q(status="failed"), name="email_failed_latest"),
            # The superuser's latest failures across every campaign.
            models.Index(fields=["updated_at"], condition=Q(status="failed"), name="email_failed_latest_all"),
            # Segments' engagement conditions ("opened any campaign in the last 30 days"): a contact's reader
            # opens, probed per contact or read whole, index-only. Only opened rows are in it, and a row enters
            # it once, at its first open.
            models.Index(
                fields=["contact", "first_opened_at"],
                condition=Q(first_opened_at__isnull=False),
                name="email_contact_opened",
            ),
            # The analytics page's count of possible duplicates: few rows, read every poll.
            models.Index(fields=["campaign"], condition=Q(possible_duplicate=True), name="email_possible_duplicate"),
            # Later bounces and complaints per campaign (reporting): few rows, each entering at its report.
            models.Index(
                fields=["campaign"],
                condition=Q(bounced_at__isnull=False) | Q(complained_at__isnull=False),
                name="email_late_report",
            ),
            # A contact's soft bounces of the last days (bounces.services' threshold).
            models.Index(
                fields=["contact", "bounced_at"],
                condition=Q(bounce_kind="soft"),
                name="email_contact_soft_bounce",
            ),
        ]

    def __str__(self):
        return self.to_email


class CampaignTally(models.Model):
    """Emails of a campaign per (status, failure class), with what happened to them.

    Written only by database triggers on campaigns_email (campaigns.tallies), in the same
    transaction as the Email rows they count, so they are exact at every instant. Rebuilt by
    `manage.py recount_tallies`. The campaign key has no database constraint: the triggers
    remove a deleted campaign's tallies themselves.
    """

    # No index of its own: the key's (campaign, status, failure_class) serves a campaign's reads, and
    # every index is opened by each trigger UPDATE, one or two per message sent.
    campaign = models.ForeignKey(
        Campaign, on_delete=models.DO_NOTHING, db_constraint=False, db_index=False, related_name="tallies"
    )
    status = models.CharField(max_length=20, choices=Email.Status.choices)
    failure_class = models.CharField(max_length=20, choices=Email.FailureClass.choices, blank=True)
    n = models.BigIntegerField(default=0)
    opened = models.BigIntegerField(default=0, help_text="first_opened_at set (a reader's open)")
    machine_only = models.BigIntegerField(default=0, help_text="a machine open and no reader's open")
    clicked = models.BigIntegerField(default=0, help_text="click_count > 0")
    unsubscribed = models.BigIntegerField(default=0, help_text="unsubscribed_at set")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["campaign", "status", "failure_class"], name="campaigntally_key"),
        ]


class CampaignHourTally(models.Model):
    """A campaign's emails per UTC hour, in four quarter-hour columns per figure.

    Quarter hours make every viewer's local day exact (offsets such as +05:30 and +05:45 fall on
    them) while one row per hour keeps a week of a campaign to 168 rows. The figures: `sent*`, sent
    emails by sent_at; `sent_opened*`, those of them a reader opened; `opened*`, reader opens by
    first_opened_at; `failed*`, failed emails by updated_at (when the failure was recorded).
    Written only by the triggers, like CampaignTally.
    """

    # No index of its own, as CampaignTally's: the key's (campaign, hour) serves a campaign's reads.
    campaign = models.ForeignKey(
        Campaign, on_delete=models.DO_NOTHING, db_constraint=False, db_index=False, related_name="hour_tallies"
    )
    hour = models.IntegerField(help_text="hours since 1970-01-01 00:00 UTC")
    sent0 = models.IntegerField(default=0)
    sent1 = models.IntegerField(default=0)
    sent2 = models.IntegerField(default=0)
    sent3 = models.IntegerField(default=0)
    sent_opened0 = models.IntegerField(default=0)
    sent_opened1 = models.IntegerField(default=0)
    sent_opened2 = models.IntegerField(default=0)
    sent_opened3 = models.IntegerField(default=0)
    opened0 = models.IntegerField(default=0)
    opened1 = models.IntegerField(default=0)
    opened2 = models.IntegerField(default=0)
    opened3 = models.IntegerField(default=0)
    failed0 = models.IntegerField(default=0)
    failed1 = models.IntegerField(default=0)
    failed2 = models.IntegerField(default=0)
    failed3 = models.IntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["campaign", "hour"], name="campaignhourtally_key")]
        # The superuser's week: every campaign's rows from an hour on.
        indexes = [models.Index(fields=["hour"], name="campaignhourtally_hour")]


class BatchTake(models.Model):
    """A claimed batch taken by a worker (campaigns.ledger.take_batch).

    One small row instead of rewriting the batch's Email rows: the second delivery of a
    send_batch task finds the row there and sends nothing.
    """

    batch_id = models.UUIDField(primary_key=True)
    taken_at = models.DateTimeField(db_index=True)


class DispatcherState(models.Model):
    """A single row: the dispatcher's lock and the figures of its last tick."""

    locked_by = models.CharField(max_length=64, blank=True)
    locked_until = models.DateTimeField(null=True, blank=True)
    last_tick_started_at = models.DateTimeField(null=True, blank=True)
    last_tick_finished_at = models.DateTimeField(null=True, blank=True)
    last_tick_duration_ms = models.PositiveIntegerField(null=True, blank=True)
    last_tick_claimed = models.PositiveIntegerField(default=0)

    class Meta:
        verbose_name = "dispatcher state"


class Segment(models.Model):
    """A saved, owner-scoped filter over contacts: usable wherever a list is (Campaign.segments).

    Its conditions are rows (SegmentCondition) the admin edits as an inline; campaigns.selectors.segments
    compiles them into a Contact queryset, which counts, previews and the start's one INSERT ... SELECT share.
    """

    class Match(models.TextChoices):
        ALL = "all", "all of the conditions"
        ANY = "any", "any of the conditions"

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="segments")
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    match = models.CharField("Contacts who match", max_length=3, choices=Match.choices, default=Match.ALL)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["owner", "name"], name="segment_unique_name_per_owner")]

    def __str__(self):
        return self.name


NUMBER_PATTERN = re.compile(r"\s*[-+]?(\d+(\.\d*)?|\.\d+)\s*")
DATE_PATTERN = re.compile(r"\d{4}-\d{2}-\d{2}")
MAX_DAYS = 36500


def parse_number(text):
    """A number as the marketer types it (12, -3.5), or ValidationError."""
    if not NUMBER_PATTERN.fullmatch(text or ""):
        raise ValidationError(f"“{text}” is not a number (write it like 12 or 3.5).")
    return float(text)


def parse_date(text):
    """A date written YYYY-MM-DD (as the import stores Excel dates), or ValidationError."""
    text = (text or "").strip()
    try:
        if not DATE_PATTERN.fullmatch(text):
            raise ValueError
        return date.fromisoformat(text)
    except ValueError:
        raise ValidationError(f"“{text}” is not a date: write it like 2026-12-31.") from None


def parse_days(text):
    text = (text or "").strip()
    if not text.isdigit() or not 1 <= int(text) <= MAX_DAYS:
        raise ValidationError(f"“{text}” is not a number of days (a whole number from 1 to {MAX_DAYS}).")
    return int(text)


class SegmentCondition(models.Model):
    """One condition of a segment: a field, an operator, and what it compares with.

    Which operators suit which field is OPERATORS; what each compares with (a typed number, date,
    number of days or text; a status, a list, a campaign) follows from the field and the operator
    groups below. clean() checks a row against them, and that its list or campaign is the segment owner's.
    """

    owner_path = "segment__owner"

    class Field(models.TextChoices):
        STATUS = "status", "Status"
        LIST = "list", "List"
        ATTRIBUTE = "attribute", "Attribute"
        CAMPAIGN = "campaign", "Campaign"
        ACTIVITY = "activity", "Any campaign"
        CREATED = "created", "Date added"

    class Operator(models.TextChoices):
        IS = "is", "is"
        IS_NOT = "is_not", "is not"
        ON_LIST = "on_list", "is on"
        NOT_ON_LIST = "not_on_list", "is not on"
        EQUALS = "equals", "equals"
        NOT_EQUALS = "not_equals", "does not equal"
        CONTAINS = "contains", "contains"
        NOT_CONTAINS = "not_contains", "does not contain"
        IS_EMPTY = "is_empty", "is empty"
        IS_NOT_EMPTY = "is_not_empty", "is not empty"
        NUMBER_EQUALS = "number_eq", "= (number)"
        NUMBER_LT = "number_lt", "< (number)"
        NUMBER_LTE = "number_lte", "≤ (number)"
        NUMBER_GT = "number_gt", "> (number)"
        NUMBER_GTE = "number_gte", "≥ (number)"
        DATE_BEFORE = "date_before", "before (date)"
        DATE_ON = "date_on", "on (date)"
        DATE_AFTER = "date_after", "after (date)"
        IN_LAST_DAYS = "in_last_days", "in the last … days"
        OPENED = "opened", "opened"
        CLICKED = "clicked", "clicked"
        NOT_OPENED = "not_opened", "received and did not open"
        OPENED_IN_LAST_DAYS = "opened_in_last_days", "opened one in the last … days"
        NOT_OPENED_IN_LAST_DAYS = "not_opened_in_last_days", "opened none in the last … days"

    F, O = Field, Operator
    OPERATORS = {
        F.STATUS: (O.IS, O.IS_NOT),
        F.LIST: (O.ON_LIST, O.NOT_ON_LIST),
        F.ATTRIBUTE: (
            O.EQUALS,
            O.NOT_EQUALS,
            O.CONTAINS,
            O.NOT_CONTAINS,
            O.IS_EMPTY,
            O.IS_NOT_EMPTY,
            O.NUMBER_EQUALS,
            O.NUMBER_LT,
            O.NUMBER_LTE,
            O.NUMBER_GT,
            O.NUMBER_GTE,
            O.DATE_BEFORE,
            O.DATE_ON,
            O.DATE_AFTER,
        ),
        F.CAMPAIGN: (O.OPENED, O.CLICKED, O.NOT_OPENED),
        F.ACTIVITY: (O.OPENED_IN_LAST_DAYS, O.NOT_OPENED_IN_LAST_DAYS),
        F.CREATED: (O.DATE_BEFORE, O.DATE_ON, O.DATE_AFTER, O.IN_LAST_DAYS),
    }
    # What the value of each operator is: parsed by these on save, so compiling never meets a bad one.
    NUMBER_OPERATORS = (O.NUMBER_EQUALS, O.NUMBER_LT, O.NUMBER_LTE, O.NUMBER_GT, O.NUMBER_GTE)
    DATE_OPERATORS = (O.DATE_BEFORE, O.DATE_ON, O.DATE_AFTER)
    DAYS_OPERATORS = (O.IN_LAST_DAYS, O.OPENED_IN_LAST_DAYS, O.NOT_OPENED_IN_LAST_DAYS)
    TEXT_OPERATORS = (O.EQUALS, O.NOT_EQUALS, O.CONTAINS, O.NOT_CONTAINS)
    del F, O

    segment = models.ForeignKey(Segment, on_delete=models.CASCADE, related_name="conditions")
    field = models.CharField(max_length=20, choices=Field.choices)
    attribute = models.CharField(max_length=100, blank=True, help_text="For an attribute: its column, e.g. City.")
    operator = models.CharField(max_length=30, choices=Operator.choices)
    value = models.CharField(max_length=200, blank=True)
    contact_status = models.CharField("status", max_length=20, choices=Contact.Status.choices, blank=True)
    # PROTECT: deleting a list or campaign a segment names would silently change who the segment is.
    contact_list = models.ForeignKey(
        ContactList, on_delete=models.PROTECT, null=True, blank=True, related_name="+", verbose_name="list"
    )
    campaign = models.ForeignKey(Campaign, on_delete=models.PROTECT, null=True, blank=True, related_name="+")

    class Meta:
        ordering = ["id"]

    def __str__(self):
        """The condition in words: "City equals “Pune”", "opened “Diwali offers”", "is on the list “VIPs”"."""
        F, O = self.Field, self.Operator
        # The select's hints ("(number)", "(date)") are not needed in a sentence.
        operator = re.sub(r" \((number|date)\)$", "", self.get_operator_display()).replace("…", self.value)
        if self.field == F.STATUS:
            return f"Status {operator} {self.get_contact_status_display()}"
        if self.field == F.LIST:
            return f"{'is not' if self.operator == O.NOT_ON_LIST else 'is'} on the list “{self.contact_list}”"
        if self.field == F.CAMPAIGN:
            return f"{operator} “{self.campaign}”"
        if self.field == F.ACTIVITY:
            return operator.replace(" one ", " a campaign ").replace(" none ", " no campaign ")
        if self.field == F.CREATED:
            return f"Date added {operator}" + ("" if self.operator in self.DAYS_OPERATORS else f" {self.value}")
        if self.operator in (O.IS_EMPTY, O.IS_NOT_EMPTY):
            return f"{self.attribute} {operator}"
        value = f"“{self.value}”" if self.operator in self.TEXT_OPERATORS else self.value
        return f"{self.attribute} {operator} {value}"

    def clean(self):
        errors = {}
        if self.field and self.operator and self.operator not in self.OPERATORS.get(self.field, ()):
            errors["operator"] = (
                f"“{self.get_operator_display()}” does not apply to {self.get_field_display().lower()}; choose one of: "
                + ", ".join(self.Operator(o).label for o in self.OPERATORS.get(self.field, ()))
                + "."
            )
        errors.update(self._problems_with_the_value())
        if errors:
            raise ValidationError(errors)

    def _problems_with_the_value(self):
        owner_id = self._segment_owner_id()
        if self.field == self.Field.STATUS and not self.contact_status:
            return {"contact_status": "Choose the status."}
        if self.field == self.Field.LIST:
            if not self.contact_list_id:
                return {"contact_list": "Choose the list."}
            if owner_id and self.contact_list.owner_id != owner_id:
                return {"contact_list": "This list belongs to someone else."}
        if self.field == self.Field.CAMPAIGN:
            if not self.campaign_id:
                return {"campaign": "Choose the campaign."}
            if owner_id and self.campaign.owner_id != owner_id:
                return {"campaign": "This campaign belongs to someone else."}
        if self.field == self.Field.ATTRIBUTE and not self.attribute.strip():
            return {"attribute": "Name the attribute, e.g. City."}
        try:
            if self.operator in self.NUMBER_OPERATORS:
                parse_number(self.value)
            elif self.operator in self.DATE_OPERATORS:
                parse_date(self.value)
            elif self.operator in self.DAYS_OPERATORS:
                parse_days(self.value)
            elif self.operator in self.TEXT_OPERATORS and self.value == "":
                return {"value": "Type the text to compare with."}
        except ValidationError as exc:
            return {"value": exc.messages[0]}
        return {}

    def _segment_owner_id(self):
        try:
            return self.segment.owner_id
        except Segment.DoesNotExist:
            return None
