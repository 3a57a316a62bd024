"""Privacy requests (GDPR): export everything held about a contact, or erase it.

Erasing keeps the campaigns' figures exact: the contact's Email rows are not deleted (the tallies
count rows by status, campaigns.tallies) but anonymised in place, status and counters untouched, so
no trigger moves a count. Its tracking events are deleted, the contact with its list memberships too.
An address that had unsubscribed, bounced or complained leaves a keyed hash (SuppressedHash), so no
later import or new contact mails it again.
"""

import json
import re
from dataclasses import dataclass

from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from django.db.models import CharField, Q, Value
from django.db.models.functions import Cast, Concat
from django.utils import timezone

from campaigns import ledger
from campaigns.models import Email
from contacts import exports
from contacts.addresses import normalize_address
from contacts.models import Contact, ImportJob, SuppressedHash
from contacts.selectors import suppressed
from privacy import selectors as privacy
from tracking.models import Event

ERASED_TEXT = "(erased)"  # in place of an erased address inside a longer text
ERASED_DOMAIN = "invalid"  # RFC 2606: never routable, so a placeholder can never be mailed


@dataclass
class Erasure:
    emails_anonymised: int
    events_deleted: int
    suppressed_as: str  # "" when the contact was subscribed: nothing is remembered of it


def export_json(*, contact: Contact) -> bytes:
    record = privacy.contact_record(contact=contact)
    return json.dumps(record, cls=DjangoJSONEncoder, ensure_ascii=False, indent=2).encode("utf-8")


def export_csv(*, contact: Contact) -> bytes:
    rows = privacy.contact_record_rows(record=privacy.contact_record(contact=contact))
    return exports.render_csv(privacy.RECORD_HEADERS, rows)


def erase_contact(*, contact: Contact, now=None) -> Erasure:
    """Delete the contact and its events, anonymise its email rows, remember a suppressed address's hash."""
    now = now or timezone.now()
    with transaction.atomic():
        contact = Contact.objects.select_for_update().get(pk=contact.pk)
        suppressed_as = contact.status if contact.status in Contact.SUPPRESSED_STATUSES else ""
        if suppressed_as:
            SuppressedHash.objects.get_or_create(
                owner_id=contact.owner_id,
                address_hash=suppressed.address_hash(contact.email),
                defaults={"reason": suppressed_as},
            )
        # Nothing unsent goes out to it any more (a batch a worker holds may still send its one message).
        ledger.cancel_open(campaign_id=None, contact_ids=[contact.pk], now=now)
        # Its rows in any campaign (a superuser may have put it into someone else's), and the owner's rows
        # still holding its address from before (a contact deleted and made again).
        emails = Email.objects.filter(Q(contact=contact) | Q(pk__in=privacy.emails_of(contact=contact).values("pk")))
        events_deleted, _ = Event.objects.filter(email__in=emails).delete()
        # Status, timestamps and counters stay: the tallies and hour tallies read nothing else.
        # The placeholder carries only the row's own id: unique per campaign, and nothing of the address.
        anonymised = emails.update(
            to_email=Concat(Value("erased-"), Cast("id", CharField()), Value(f"@{ERASED_DOMAIN}")),
            to_name="",
            contact=None,
            smtp_response="",
            bounce_text="",  # a report's diagnostic names the address too
        )
        _scrub_import_jobs(owner_id=contact.owner_id, address=contact.email)
        contact.delete()
    return Erasure(emails_anonymised=anonymised, events_deleted=events_deleted, suppressed_as=suppressed_as)


def _scrub_import_jobs(*, owner_id, address):
    """Take the address out of the owner's import jobs, which keep some of a file's text: the preview's first
    rows and the sample of rejected rows (a row naming it is dropped; the counts stay), and the column
    headers and refusal notes (a headerless file's first row is its header), where it is replaced."""
    jobs = ImportJob.objects.filter(owner_id=owner_id).only("pk", "preview", "rejected_rows", "notes")
    for job in jobs.iterator():
        changes = {}
        preview = job.preview or {}
        rows = preview.get("rows") or []
        kept_rows = [_row_scrubbed(row, address) for row in rows if not _names_address(row, address)]
        columns = preview.get("columns") or []  # [[header, meaning]], as JSON stores them
        scrubbed_columns = [[_without_address(text, address) for text in column] for column in columns]
        keys = preview.get("attribute_keys") or []  # the attribute columns' headers, in file order
        scrubbed_keys = [_without_address(key, address) for key in keys]
        if kept_rows != rows or scrubbed_columns != columns or scrubbed_keys != keys:
            changes["preview"] = {
                **preview,
                "rows": kept_rows,
                "columns": scrubbed_columns,
                **({"attribute_keys": scrubbed_keys} if keys else {}),
            }
        rejected = job.rejected_rows or []
        kept_rejected = [row for row in rejected if not _names_address(row, address)]
        if kept_rejected != rejected:
            changes["rejected_rows"] = kept_rejected
        notes = _without_address(job.notes, address)
        if notes != job.notes:
            changes["notes"] = notes
        if changes:
            ImportJob.objects.filter(pk=job.pk).update(**changes)


def _row_scrubbed(row, address):
    """A preview row of another address, its attributes keyed by headers that may name the address."""
    attributes = row.get("attributes")
    if not attributes:
        return row
    return {**row, "attributes": {_without_address(key, address): value for key, value in attributes.items()}}


def _names_address(row, address):
    # A rejected row holds its cell as written ("Ann <ann@example.org>", "ann@example.org; bob@..."), so
    # containment, not equality: a row that merely contains it (joann@...) goes too, a sample loses one row.
    return address in normalize_address(row.get("address", ""))


def _without_address(text, address):
    return re.sub(re.escape(address), ERASED_TEXT, text or "", flags=re.IGNORECASE)


def describe_erasure(erasure: Erasure) -> str:
    text = (
        f"The contact was erased: {erasure.emails_anonymised} email record(s) anonymised (the campaigns' "
        f"figures are unchanged), {erasure.events_deleted} tracking event(s) deleted."
    )
    if erasure.suppressed_as:
        text += (
            f" Its address, {erasure.suppressed_as}, is kept as a hash only, so it is never mailed or imported again."
        )
    return text
