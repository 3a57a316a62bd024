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
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.utils import timezone

from bounces import parsing, selectors
from bounces.parsing import BOUNCE_KINDS, Kind, Report
from bounces.reader import MailboxReader, Message
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
IGNORED_KINDS = (Kind.NOT_A_REPORT, Kind.DELAYED)
# Messages of a mailbox pass recorded in one transaction, and then removed from the mailbox together.
CHUNK_MESSAGES = 100


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
    return process_report(account=account, report=parsing.parse(raw), now=now or timezone.now())


def process_report(*, account: SmtpAccount, report: Report, now: datetime) -> Outcome:
    """Do what one parsed message of `account`'s bounce mailbox reports, in a transaction of its own."""
    if report.kind in IGNORED_KINDS:
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
    """Process every message the reader holds, CHUNK_MESSAGES at a time, each marked done once what it
    reports is committed.

    Each message of a chunk is parsed as it is read (memory holds the chunk's reports, not its
    messages); the chunk is then recorded in one transaction (`process_reports`), and only after its
    COMMIT are its messages marked done. A pass cut between the two leaves them in the mailbox, and
    the next pass finds them recorded and changes nothing. A chunk whose transaction fails (the
    database unreachable, a bug) is processed again one message at a time: a message whose processing
    fails stays in the mailbox for the next pass, logged; the others go on."""
    figures = Figures()
    for chunk in _parsed_chunks(reader.messages(), size=CHUNK_MESSAGES):
        figures.read += len(chunk)
        for key in _process_chunk(account=account, chunk=chunk, figures=figures, now=now or timezone.now()):
            reader.done(key)
    return figures


def process_reports(*, account: SmtpAccount, reports: Sequence[Report], now: datetime) -> Figures:
    """What `process_report` does to each of these reports of `account`'s bounce mailbox, for all of them
    in one transaction of a few statements, whatever their number (`figures.read` left to the caller).

    The reports apply in their order: an email's second report acts as if read after the first (the
    same report again changes nothing; a hard bounce after a soft one replaces it). A contact that
    several of them suppress keeps the reason of the first (the soft bounces' limit counted as reached
    at the contact's last soft bounce among them). An unsubscribe request applies before the rest."""
    figures = Figures()
    emails = _matched_emails(account=account, reports=reports)
    to_record: list[_Matched] = []
    unsubscribed: set[int] = set()
    with transaction.atomic():
        for index, (report, email) in enumerate(zip(reports, emails, strict=True)):
            if report.kind in IGNORED_KINDS:
                figures.ignored += 1
            elif email is None:
                log.info("account %s: a %s report names no email of its owner", account.pk, report.kind)
                figures.unmatched += 1
            elif report.kind == Kind.UNSUBSCRIBE:
                if email.id in unsubscribed:
                    figures.already_recorded += 1
                else:
                    _count(figures, _unsubscribe(email, now=now))
                    unsubscribed.add(email.id)
            else:
                to_record.append(_Matched(index=index, email=email, report=report))
        recorded = _record_reports(to_record, now=now)
        recorded_indexes = {m.index for m in recorded}
        for matched in to_record:
            if matched.index in recorded_indexes:
                figures.recorded[matched.report.kind] = figures.recorded.get(matched.report.kind, 0) + 1
            else:
                figures.already_recorded += 1
        tracking_services.record_report_events(
            events=[(m.email.id, m.email.campaign_id, _event_kind(m.report)) for m in recorded]
        )
        figures.suppressed += _suppress_reported_contacts(recorded, now=now)
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


def _parsed_chunks(messages: Iterable[Message], *, size: int) -> Iterator[list[tuple[str, Report]]]:
    """The messages' (key, report) pairs, `size` at a time, each message parsed as soon as it is read."""
    chunk: list[tuple[str, Report]] = []
    for message in messages:
        chunk.append((message.key, parsing.parse(message.raw)))
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _process_chunk(
    *, account: SmtpAccount, chunk: list[tuple[str, Report]], figures: Figures, now: datetime
) -> list[str]:
    """The keys of the chunk's messages whose reports are committed: all of them, or, when the chunk's
    transaction fails, those that go through one at a time."""
    try:
        _add(figures, process_reports(account=account, reports=[report for _key, report in chunk], now=now))
        return [key for key, _report in chunk]
    except Exception:  # noqa: BLE001 - one message must not stop its chunk; each is tried alone next
        log.warning("account %s: a chunk of %s bounce mailbox messages failed", account.pk, len(chunk), exc_info=True)
    done = []
    for key, report in chunk:
        try:
            outcome = process_report(account=account, report=report, now=now)
        except Exception:  # noqa: BLE001 - one message must not stop the mailbox; it stays for the next pass
            log.exception("account %s: bounce mailbox message %s not processed", account.pk, key)
            figures.errors += 1
            continue
        _count(figures, outcome)
        done.append(key)
    return done


@dataclass(frozen=True)
class _Matched:
    """A bounce or complaint of a chunk, matched to its email; `index` is its place in the chunk."""

    index: int
    email: ReportedEmail
    report: Report


def _matched_emails(*, account: SmtpAccount, reports: Sequence[Report]) -> list[ReportedEmail | None]:
    """Each report's email of the account's owner (None: ignored or unmatched): the signed ids by one
    query, a report without one by its Message-ID and recipient."""
    by_id = selectors.reported_emails(
        owner_id=account.owner_id,
        email_ids=[r.email_id for r in reports if r.email_id is not None and r.kind not in IGNORED_KINDS],
    )
    emails: list[ReportedEmail | None] = []
    for report in reports:
        if report.kind in IGNORED_KINDS:
            emails.append(None)
        elif report.email_id is not None:
            emails.append(by_id.get(report.email_id))
        else:
            emails.append(selectors.reported_email(owner_id=account.owner_id, report=report))
    return emails


def _record_reports(matched: list[_Matched], *, now: datetime) -> list[_Matched]:
    """Record the bounces and complaints on their emails; those that changed their row, in order.

    An email's n-th bounce (or complaint) of the list goes in the n-th statement: one UPDATE changes
    a row once, and the ledger's conditions then judge each against the one before it."""
    rounds: list[list[_Matched]] = []
    seen: Counter[tuple[int, bool]] = Counter()
    for item in matched:
        key = (item.email.id, item.report.kind == Kind.COMPLAINT)
        if seen[key] == len(rounds):
            rounds.append([])
        rounds[seen[key]].append(item)
        seen[key] += 1
    recorded: set[int] = set()
    for round_ in rounds:
        bounces = [m for m in round_ if m.report.kind in BOUNCE_KINDS]
        changed = ledger.record_bounces(bounces=[_ledger_bounce(m) for m in bounces], now=now)
        recorded.update(m.index for m in bounces if m.email.id in changed)
        complaints = [m for m in round_ if m.report.kind == Kind.COMPLAINT]
        changed = ledger.record_complaints(email_ids=[m.email.id for m in complaints], now=now)
        recorded.update(m.index for m in complaints if m.email.id in changed)
    return [m for m in matched if m.index in recorded]


def _ledger_bounce(matched: _Matched) -> ledger.Bounce:
    report = matched.report
    kind = Email.BounceKind.HARD if report.kind == Kind.HARD else Email.BounceKind.SOFT
    return ledger.Bounce(email_id=matched.email.id, kind=kind, status=report.status, text=report.text or report.status)


def _event_kind(report: Report) -> str:
    return Event.Kind.COMPLAINT if report.kind == Kind.COMPLAINT else Event.Kind.BOUNCE


def _suppress_reported_contacts(recorded: list[_Matched], *, now: datetime) -> int:
    """Suppress the contacts the recorded reports call for, one `suppress` per status; how many changed.

    A hard bounce bounces its contact, a complaint makes it complained, a soft bounce bounces it when
    the contact has BOUNCE_SOFT_LIMIT of them within BOUNCE_SOFT_DAYS (counted by one query, this
    transaction's included). A contact keeps the reason of its first report that suppresses it."""
    reasons: dict[int, tuple[int, str]] = {}  # contact id -> (index, status) of its first suppressing report
    last_soft: dict[int, int] = {}  # contact id -> index of its last recorded soft bounce
    for item in recorded:
        contact_id = item.email.contact_id
        if contact_id is None:
            continue
        if item.report.kind == Kind.SOFT:
            last_soft[contact_id] = item.index
        else:
            status = Contact.Status.COMPLAINED if item.report.kind == Kind.COMPLAINT else Contact.Status.BOUNCED
            reasons.setdefault(contact_id, (item.index, status))
    if last_soft:
        since = now - timedelta(days=settings.BOUNCE_SOFT_DAYS)
        counts = selectors.soft_bounce_counts_since(contact_ids=last_soft, since=since)
        for contact_id, index in last_soft.items():
            earlier = reasons.get(contact_id)
            if counts.get(contact_id, 0) >= settings.BOUNCE_SOFT_LIMIT and (earlier is None or index < earlier[0]):
                reasons[contact_id] = (index, Contact.Status.BOUNCED)
    by_status: dict[str, list[int]] = {}
    for contact_id, (_index, reason) in reasons.items():
        by_status.setdefault(reason, []).append(contact_id)
    return sum(
        contacts.suppress(contact_ids=sorted(contact_ids), status=status, now=now)
        for status, contact_ids in sorted(by_status.items())
    )


def _add(figures: Figures, more: Figures) -> None:
    for kind, count in more.recorded.items():
        figures.recorded[kind] = figures.recorded.get(kind, 0) + count
    figures.already_recorded += more.already_recorded
    figures.unmatched += more.unmatched
    figures.ignored += more.ignored
    figures.suppressed += more.suppressed
    figures.errors += more.errors


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
