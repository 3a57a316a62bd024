"""Reads of the bounce loop: which of an owner's emails a report is about, a contact's recent soft bounces."""

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from django.db.models import Count, Q, QuerySet

from bounces.parsing import Report
from campaigns.models import Email
from contacts.models import Contact
from sending.models import BounceMailbox


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


def reported_emails(*, owner_id: int, email_ids: Iterable[int]) -> dict[int, ReportedEmail]:
    """The owner's Emails among these ids (signed ids from reports), by id: another owner's are left out."""
    rows = Email.objects.filter(campaign__owner_id=owner_id, pk__in=set(email_ids)).values_list(
        "id", "campaign_id", "contact_id", "unsubscribed_at"
    )
    return {row[0]: ReportedEmail(*row) for row in rows}


def soft_bounce_counts_since(*, contact_ids: Iterable[int], since: datetime) -> dict[int, int]:
    """`soft_bounces_since` for many contacts in one query: contact id -> soft bounces (absent: none)."""
    rows = (
        Email.objects.filter(contact_id__in=set(contact_ids), bounce_kind=Email.BounceKind.SOFT, bounced_at__gte=since)
        .values("contact_id")
        .annotate(n=Count("id"))
        .values_list("contact_id", "n")
    )
    return dict(rows)


def soft_bounces_since(*, contact_id: int, since: datetime) -> int:
    return Email.objects.filter(contact_id=contact_id, bounce_kind=Email.BounceKind.SOFT, bounced_at__gte=since).count()


CONTACT_HISTORY_ROWS = 10


@dataclass(frozen=True)
class DeliveryProblem:
    """One email of a contact that did not reach it: refused during the SMTP dialogue, or reported later."""

    at: datetime
    campaign: str
    what: str  # "refused when sent", "hard bounce", "soft bounce", "complaint"
    detail: str  # the server's answer, the report's status and text


def contact_delivery_problems(*, contact: Contact, limit: int = CONTACT_HISTORY_ROWS) -> list[DeliveryProblem]:
    """A contact's latest bounces (the SMTP server's refusals and the later reports) and complaints in
    its owner's campaigns, newest first, from its own emails (the contact index)."""
    rows = (
        Email.objects.filter(contact_id=contact.pk, campaign__owner_id=contact.owner_id)
        .filter(
            Q(status=Email.Status.FAILED, failure_class=Email.FailureClass.BOUNCED)
            | Q(bounced_at__isnull=False)
            | Q(complained_at__isnull=False)
        )
        .order_by("-updated_at")
        .values_list(
            "campaign__name",
            "status",
            "updated_at",
            "smtp_code",
            "smtp_response",
            "bounced_at",
            "bounce_kind",
            "bounce_status",
            "bounce_text",
            "complained_at",
        )[:limit]
    )
    problems = []
    for campaign, status, updated_at, code, response, bounced_at, kind, bounce_status, text, complained_at in rows:
        if status == Email.Status.FAILED:
            answer = f"{code} {response}".strip() if code and not response.startswith(str(code)) else response
            problems.append(DeliveryProblem(updated_at, campaign, "refused when sent", answer))
        if bounced_at is not None:
            detail = ": ".join(p for p in (bounce_status, text) if p)
            problems.append(DeliveryProblem(bounced_at, campaign, f"{kind} bounce after delivery", detail))
        if complained_at is not None:
            problems.append(DeliveryProblem(complained_at, campaign, "complaint (spam report)", ""))
    return sorted(problems, key=lambda p: p.at, reverse=True)[:limit]


def mailboxes_to_read(*, account_id: int | None = None) -> QuerySet[BounceMailbox]:
    """The enabled bounce mailboxes, each with its account; only the account's when one is named."""
    mailboxes = BounceMailbox.objects.filter(enabled=True).select_related("account").order_by("pk")
    return mailboxes if account_id is None else mailboxes.filter(account_id=account_id)
