"""What a delivery report read from an SMTP account's bounce mailbox does.

- A hard bounce (5.x.x) suppresses the contact as bounced at once; a soft one (4.x.x) only when it
  is the contact's BOUNCE_SOFT_LIMIT-th within BOUNCE_SOFT_DAYS days.
- A complaint (ARF) suppresses it as complained.
- A mail to the List-Unsubscribe mailto unsubscribes, as the one-click link does.
Suppressing goes through contacts.services.contacts.suppress, which cancels the contact's unsent
emails in the owner's other campaigns. The Email row records the bounce or complaint (its status
stays sent: the server did accept it), and a tracking Event feeds the activity lists.

A report changes something only for an email of the account's owner, named by a signed value or
by its Message-ID and recipient (bounces.selectors.reported_email): a forged or foreign report
changes nothing. The ledger's conditional UPDATEs make a report read twice change nothing.
"""

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.utils import timezone

from bounces import parsing, selectors
from bounces.parsing import BOUNCE_KINDS, Kind, Report
from bounces.reader import MailboxReader
from bounces.selectors import ReportedEmail
from campaigns import ledger
from campaigns.models import Email
from contacts.models import Contact
from contacts.services import contacts
from sending.mailbox import open_mailbox
from sending.models import BounceMailbox, SmtpAccount
from tracking import services as tracking_services
from tracking.models import Event

log = logging.getLogger(__name__)
UNSUBSCRIBE_USER_AGENT = "mail to the List-Unsubscribe address"


class Result:
    RECORDED = "recorded"  # the email records it now (and the contact was suppressed where due)
    ALREADY_RECORDED = "already recorded"  # the same report, or a worse one, was read before
    UNMATCHED = "unmatched"  # no email of the account's owner: forged, foreign, or not ours
    IGNORED = "ignored"  # not a report, or a delay


@dataclass(frozen=True)
class Outcome:
    kind: Kind
    result: str
    email_id: int | None = None
    suppressed: bool = False  # the contact was suppressed by this report


@dataclass
class Figures:
    """What one pass over a mailbox did, by outcome."""

    read: int = 0
    recorded: dict[str, int] = field(default_factory=dict)  # kind -> emails that record it now
    already_recorded: int = 0
    unmatched: int = 0
    ignored: int = 0
    suppressed: int = 0
    errors: int = 0  # left in the mailbox for the next pass


def process_message(*, account: SmtpAccount, raw: bytes, now: datetime | None = None) -> Outcome:
    """Read one message of `account`'s bounce mailbox and do what it reports."""
    now = now or timezone.now()
    report = parsing.parse(raw)
    if report.kind in (Kind.NOT_A_REPORT, Kind.DELAYED):
        return Outcome(kind=report.kind, result=Result.IGNORED, email_id=report.email_id)
    email = selectors.reported_email(owner_id=account.owner_id, report=report)
    if email is None:
        log.info("account %s: a %s report names no email of its owner", account.pk, report.kind)
        return Outcome(kind=report.kind, result=Result.UNMATCHED)
    if report.kind == Kind.UNSUBSCRIBE:
        return _unsubscribe(email, now=now)
    if report.kind == Kind.COMPLAINT:
        return _complaint(email, now=now)
    return _bounce(email, report, now=now)


def apply_report(*, email: ReportedEmail, report: Report, source: str, now: datetime) -> Outcome:
    """Do what an already matched report says to `email` (bounces.esp: an ESP's webhook event, matched
    within the webhook's account). `source` names where an unsubscribe came from, for its event."""
    if report.kind == Kind.UNSUBSCRIBE:
        return _unsubscribe(email, now=now, user_agent=source)
    if report.kind == Kind.COMPLAINT:
        return _complaint(email, now=now)
    if report.kind in BOUNCE_KINDS:
        return _bounce(email, report, now=now)
    return Outcome(kind=report.kind, result=Result.IGNORED, email_id=email.id)


def process_mailbox(*, account: SmtpAccount, reader: MailboxReader, now: datetime | None = None) -> Figures:
    """Process every message the reader holds, each marked done once processed.

    A message whose processing fails (the database unreachable, a bug) stays in the mailbox for the
    next pass, logged; the others go on."""
    figures = Figures()
    for message in reader.messages():
        figures.read += 1
        try:
            outcome = process_message(account=account, raw=message.raw, now=now)
        except Exception:  # noqa: BLE001 - one message must not stop the mailbox; it stays for the next pass
            log.exception("account %s: bounce mailbox message %s not processed", account.pk, message.key)
            figures.errors += 1
            continue
        _count(figures, outcome)
        reader.done(message.key)
    return figures


def read_mailbox(*, mailbox: BounceMailbox, now: datetime | None = None) -> Figures | None:
    """One pass over an account's bounce mailbox: every message processed, then removed from it.

    None when another pass over the same mailbox is running (the periodic read and `process_bounces`
    never read one mailbox at once: the second would only repeat the first's work). Raises
    sending.mailbox.MailboxError, recorded on the mailbox, when the mailbox cannot be read."""
    key = f"bounces:reading:{mailbox.pk}"
    if not cache.add(key, 1, timeout=settings.BOUNCE_READ_LOCK_SECONDS):
        return None
    try:
        with open_mailbox(mailbox) as reader:
            return process_mailbox(account=mailbox.account, reader=reader, now=now)
    finally:
        cache.delete(key)


def _count(figures: Figures, outcome: Outcome) -> None:
    if outcome.result == Result.RECORDED:
        figures.recorded[outcome.kind] = figures.recorded.get(outcome.kind, 0) + 1
    elif outcome.result == Result.ALREADY_RECORDED:
        figures.already_recorded += 1
    elif outcome.result == Result.UNMATCHED:
        figures.unmatched += 1
    else:
        figures.ignored += 1
    figures.suppressed += int(outcome.suppressed)


def _bounce(email: ReportedEmail, report: Report, *, now: datetime) -> Outcome:
    kind = Email.BounceKind.HARD if report.kind == Kind.HARD else Email.BounceKind.SOFT
    with transaction.atomic():
        if not ledger.record_bounce(
            email_id=email.id, kind=kind, status=report.status, text=report.text or report.status, now=now
        ):
            return Outcome(kind=report.kind, result=Result.ALREADY_RECORDED, email_id=email.id)
        tracking_services.record_report_event(email_id=email.id, campaign_id=email.campaign_id, kind=Event.Kind.BOUNCE)
        suppressed = False
        if email.contact_id is not None and (kind == Email.BounceKind.HARD or _soft_limit_reached(email, now=now)):
            suppressed = bool(contacts.suppress(contact_ids=[email.contact_id], status=Contact.Status.BOUNCED, now=now))
    return Outcome(kind=report.kind, result=Result.RECORDED, email_id=email.id, suppressed=suppressed)


def _soft_limit_reached(email: ReportedEmail, *, now: datetime) -> bool:
    assert email.contact_id is not None
    since = now - timedelta(days=settings.BOUNCE_SOFT_DAYS)
    return selectors.soft_bounces_since(contact_id=email.contact_id, since=since) >= settings.BOUNCE_SOFT_LIMIT


def _complaint(email: ReportedEmail, *, now: datetime) -> Outcome:
    with transaction.atomic():
        if not ledger.record_complaint(email_id=email.id, now=now):
            return Outcome(kind=Kind.COMPLAINT, result=Result.ALREADY_RECORDED, email_id=email.id)
        tracking_services.record_report_event(
            email_id=email.id, campaign_id=email.campaign_id, kind=Event.Kind.COMPLAINT
        )
        suppressed = email.contact_id is not None and bool(
            contacts.suppress(contact_ids=[email.contact_id], status=Contact.Status.COMPLAINED, now=now)
        )
    return Outcome(kind=Kind.COMPLAINT, result=Result.RECORDED, email_id=email.id, suppressed=suppressed)


def _unsubscribe(email: ReportedEmail, *, now: datetime, user_agent: str = UNSUBSCRIBE_USER_AGENT) -> Outcome:
    if email.unsubscribed_at is not None:
        return Outcome(kind=Kind.UNSUBSCRIBE, result=Result.ALREADY_RECORDED, email_id=email.id)
    tracking_services.unsubscribe(email_id=email.id, user_agent=user_agent, now=now)
    return Outcome(kind=Kind.UNSUBSCRIBE, result=Result.RECORDED, email_id=email.id)
