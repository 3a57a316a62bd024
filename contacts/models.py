"""Contacts, their lists, imports, subscription forms and the hashes of erased addresses.

The tables keep their campaigns_ names: contacts migration 0001 adopts them in Django's state
only, so no table is renamed or copied.
"""

import re
import uuid
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models.functions import Lower

from contacts.addresses import ContactEmailField
from contacts.addresses import normalize_address as normalize_contact_address


class Contact(models.Model):
    class Status(models.TextChoices):
        SUBSCRIBED = "subscribed", "Subscribed"
        UNSUBSCRIBED = "unsubscribed", "Unsubscribed"
        BOUNCED = "bounced", "Bounced"
        COMPLAINED = "complained", "Complained"

    # The one definition of suppressed: every status but subscribed (a test keeps it so). Nothing
    # is sent to these contacts, no import resubscribes them, no retry brings their emails back.
    SUPPRESSED_STATUSES = (Status.UNSUBSCRIBED, Status.BOUNCED, Status.COMPLAINED)

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="contacts")
    # Stored trimmed and lower-cased, so equality is case-insensitive everywhere.
    # Accepts internationalised addresses (zoë.müller@example.de); the rule is in contacts.addresses.
    email = ContactEmailField(max_length=254)
    name = models.CharField(max_length=200, blank=True)
    attributes = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.SUBSCRIBED)
    status_changed_at = models.DateTimeField(null=True, blank=True)
    # Consent, recorded when a subscription form's confirmation (or single opt-in) subscribes the contact:
    # when, from which form, the wording agreed to (copied: the form may change later), the IP hashed.
    consent_at = models.DateTimeField(null=True, blank=True)
    consent_form = models.ForeignKey(
        "SubscriptionForm", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    # Database defaults too: the import writes contacts with one INSERT that names only its own columns.
    consent_text = models.TextField(blank=True, default="", db_default="")
    consent_ip_hash = models.CharField(max_length=64, blank=True, default="", db_default="")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "campaigns_contact"
        ordering = ["email"]
        constraints = [
            models.UniqueConstraint(
                Lower("email"),
                "owner",
                name="contact_unique_email_per_owner",
                violation_error_message="You have a contact with this address already.",
            ),
        ]
        indexes = [models.Index(fields=["owner", "status"], name="contact_owner_status")]

    def __str__(self):
        return f"{self.name} <{self.email}>" if self.name else self.email

    def save(self, *args: Any, **kwargs: Any) -> None:
        self.email = normalize_email(self.email)
        super().save(*args, **kwargs)


def normalize_email(address: object) -> str:
    return normalize_contact_address(address)


class ContactList(models.Model):
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="contact_lists")
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    contacts = models.ManyToManyField(
        Contact, related_name="lists", blank=True, db_table="campaigns_contactlist_contacts"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "campaigns_contactlist"
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["owner", "name"], name="contactlist_unique_name_per_owner")]

    def __str__(self):
        return self.name


def import_upload_path(job, filename):
    return f"imports/{job.owner_id}/{uuid.uuid4().hex}/{Path(filename).name[-100:]}"


class ImportJob(models.Model):
    """One uploaded contact file: its preview (dry run, in a worker), then its import, progress and report.

    The uploaded file is kept only while the job may still read it: deleted when the job ends (done,
    failed, cancelled) or, never confirmed, when it expires after IMPORT_UNCONFIRMED_FILE_HOURS (`file` is
    blank then).
    """

    class Status(models.TextChoices):
        UPLOADED = "uploaded", "Uploaded (waiting to be read)"
        READING = "reading", "Reading the file"
        PREVIEWED = "previewed", "Previewed (waiting for confirmation)"
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Importing"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"
        CANCELLED = "cancelled", "Cancelled"
        EXPIRED = "expired", "Expired (not confirmed in time)"

    ACTIVE_STATUSES = (Status.QUEUED, Status.RUNNING)
    READING_STATUSES = (Status.UPLOADED, Status.READING)
    ENDED_STATUSES = (Status.DONE, Status.FAILED, Status.CANCELLED, Status.EXPIRED)

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="import_jobs")
    contact_list = models.ForeignKey(
        ContactList, on_delete=models.SET_NULL, null=True, blank=True, related_name="import_jobs"
    )
    # A list to create on confirmation (nothing is written before it).
    new_list_name = models.CharField(max_length=200, blank=True)
    file = models.FileField(upload_to=import_upload_path, max_length=500, blank=True)
    original_name = models.CharField(max_length=255)
    encoding = models.CharField(max_length=32, blank=True, help_text="Chosen on the form; blank: detected.")
    file_description = models.CharField(max_length=200, blank=True)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.UPLOADED)
    total_rows = models.PositiveIntegerField(default=0)
    processed_rows = models.PositiveIntegerField(default=0)
    created_count = models.PositiveIntegerField(default=0)
    updated_count = models.PositiveIntegerField(default=0)
    merged_count = models.PositiveIntegerField(default=0)
    suppressed_count = models.PositiveIntegerField(default=0)
    rejected_count = models.PositiveIntegerField(default=0)
    blank_count = models.PositiveIntegerField(default=0)
    # The dry run's figures, columns and first rows, as shown on the preview page.
    preview = models.JSONField(default=dict, blank=True)
    # [{"row": 5, "address": "not-an-email", "reason": "..."}]: the first rejected rows
    # (contacts.imports.service.REJECTED_SAMPLE); rejected_count (preview: preview["counts"]) counts them all.
    rejected_rows = models.JSONField(default=list, blank=True)
    notes = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "campaigns_importjob"
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["owner", "-created_at"], name="importjob_owner_created")]

    def __str__(self):
        return f"{self.original_name} ({self.get_status_display().lower()})"

    @property
    def list_name(self):
        return self.contact_list.name if self.contact_list_id else self.new_list_name

    @property
    def rejected_total(self):
        """Every rejected row, counted (rejected_rows keeps the first few): the import's once done, else
        the preview's."""
        if self.status == self.Status.DONE:
            return self.rejected_count
        return (self.preview or {}).get("counts", {}).get("rejected", 0)

    @property
    def percent(self):
        if self.status == self.Status.DONE:
            return 100
        return int(100 * self.processed_rows / self.total_rows) if self.total_rows else 0


class SuppressedHash(models.Model):
    """An erased contact's address, kept only as a keyed hash, so it is never mailed or imported again.

    Written by privacy.services.erase_contact for a contact that had unsubscribed,
    bounced or complained; read by imports (such a row is skipped) and by new contacts (created
    suppressed). The hash is an HMAC of the normalised address keyed from SECRET_KEY
    (contacts.selectors.suppressed.address_hash): it cannot be turned back into the address, only matched.
    """

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="suppressed_hashes")
    address_hash = models.CharField(max_length=64)
    reason = models.CharField(max_length=20, choices=[(s.value, s.label) for s in Contact.SUPPRESSED_STATUSES])
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "campaigns_suppressedhash"
        constraints = [
            models.UniqueConstraint(fields=["owner", "address_hash"], name="suppressedhash_unique_per_owner"),
        ]

    def __str__(self):
        return f"{self.get_reason_display()} (erased)"


ATTRIBUTE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_ -]{0,49}")


def validate_attribute_names(value):
    if not isinstance(value, list) or not all(isinstance(name, str) for name in value):
        raise ValidationError("A list of attribute names.")
    for name in value:
        if not ATTRIBUTE_NAME.fullmatch(name):
            raise ValidationError(
                f"“{name}” is not an attribute name: letters, digits, spaces, - and _, starting with a letter."
            )
        if name.lower() in ("email", "name"):
            raise ValidationError(f"“{name}” is asked on every form already.")


class SubscriptionForm(models.Model):
    """A public sign-up form for one contact list: a hosted page and an embeddable snippet."""

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="subscription_forms")
    contact_list = models.ForeignKey(ContactList, on_delete=models.CASCADE, related_name="subscription_forms")
    title = models.CharField(max_length=200)
    consent_text = models.TextField(
        "Consent wording",
        help_text="Shown above the button and recorded on every contact who subscribes through this form.",
    )
    attributes_asked = models.JSONField(
        "Attributes asked",
        default=list,
        blank=True,
        validators=[validate_attribute_names],
        help_text="Contact attributes the form asks for besides email and name, e.g. City, Company.",
    )
    smtp_account = models.ForeignKey(
        "sending.SmtpAccount",
        on_delete=models.PROTECT,
        related_name="subscription_forms",
        verbose_name="SMTP account",
        help_text="Sends the confirmation emails (single opt-in forms too: a suppressed contact confirms by email).",
    )
    double_opt_in = models.BooleanField(
        "Double opt-in",
        default=True,
        help_text="Subscribe only once the address is confirmed by email. Turn off only for people who consented "
        "elsewhere already.",
    )
    enabled = models.BooleanField(default=True, help_text="A disabled form takes no submissions.")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "campaigns_subscriptionform"
        ordering = ["title"]

    def __str__(self):
        return self.title

    def clean(self):
        errors = {}
        if self.contact_list_id and self.owner_id and self.contact_list.owner_id != self.owner_id:
            errors["contact_list"] = "This list belongs to someone else."
        if self.smtp_account_id and self.owner_id and self.smtp_account.owner_id != self.owner_id:
            errors["smtp_account"] = "This SMTP account belongs to someone else."
        if errors:
            raise ValidationError(errors)


class SubscriptionRequest(models.Model):
    """A submission waiting for its address to be confirmed: nothing is on the list until then."""

    owner_path = "form__owner"

    form = models.ForeignKey(SubscriptionForm, on_delete=models.CASCADE, related_name="requests")
    email = ContactEmailField(max_length=254)
    name = models.CharField(max_length=200, blank=True)
    attributes = models.JSONField(default=dict, blank=True)
    consent_text = models.TextField(help_text="The form's wording when it was submitted.")
    ip_hash = models.CharField(max_length=64, blank=True)
    created_at = models.DateTimeField()
    # When its confirmation email went out (blank: single opt-in, nothing mailed): at most one an hour per address.
    mailed_at = models.DateTimeField(null=True, blank=True)
    confirmed_at = models.DateTimeField(null=True, blank=True)
    contact = models.ForeignKey(Contact, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")

    class Meta:
        db_table = "campaigns_subscriptionrequest"
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["form", "email"], name="subscriptionrequest_address")]

    def __str__(self):
        return self.email
