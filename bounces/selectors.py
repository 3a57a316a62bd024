"""Reads of the bounce loop: which of an owner's emails a report is about, a contact's recent soft bounces."""

from dataclasses import dataclass
from datetime import datetime

from bounces.parsing import Report
from campaigns.models import Email
from contacts.models import Contact


@dataclass(frozen=True)
class ReportedEmail:
    id: int
    campaign_id: int
    contact_id: int | None
    unsubscribed_at: datetime | None


def reported_email(*, owner_id: int, report: Report) -> ReportedEmail | None:
    """The owner's Email the report names: by its signed id (VERP, an unsubscribe token), else by the
    original Message-ID sent to one of the recipients it names. Another owner's email is None."""
    rows = Email.objects.filter(campaign__owner_id=owner_id)
    if report.email_id is not None:
        rows = rows.filter(pk=report.email_id)
    elif report.message_id and report.recipients:
        # Through the owner's contacts (unique per address) and the email's contact index: the
        # Message-ID alone has no index.
        contacts = Contact.objects.filter(owner_id=owner_id, email__in=report.recipients)
        rows = rows.filter(contact__in=contacts, message_id=report.message_id)
    else:
        return None
    row = rows.values_list("id", "campaign_id", "contact_id", "unsubscribed_at").first()
    return ReportedEmail(*row) if row else None


def soft_bounces_since(*, contact_id: int, since: datetime) -> int:
    return Email.objects.filter(contact_id=contact_id, bounce_kind=Email.BounceKind.SOFT, bounced_at__gte=since).count()
