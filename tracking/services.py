"""Writes of the tracking endpoints: opens, clicks, unsubscribes, and the Link rows clicks redirect to.

Semantics of the counters on campaigns.Email:
- first_opened_at / open_count: opens by a reader (machine opens left out, so the
  open rate counts people); machine_open: at least one machine open was seen
  (Apple MPP, an image proxy, a scanner, or an open within seconds of sending).
- first_clicked_at / click_count: clicks by a reader; a reader's click counts as
  the first open when none was recorded.
Every open, click and unsubscribe is also an Event (is_machine set), never with an IP address; so
is a later bounce or complaint (record_report_event).
An open or click repeated within TRACKING_REPEAT_SECONDS (the same email, and link for a click,
and the same kind of opener: reader or machine) records nothing: no Event, no counter.
"""

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Case, F, PositiveIntegerField, Value, When

from campaigns.models import Campaign, Email
from contacts.models import Contact
from contacts.services import contacts
from tracking import machine_opens
from tracking.models import URL_MAX_LENGTH, USER_AGENT_MAX_LENGTH, Event, Link


def served_on(account_id: int | None) -> dict[str, int]:
    """The lookups that keep a request on an account's tracking domain to that account's emails
    (none on the site's own host)."""
    return {} if account_id is None else {"campaign__smtp_account_id": account_id}


def _is_machine(*, user_agent: str, sent_at: datetime | None, now: datetime) -> bool:
    return machine_opens.is_machine_user_agent(user_agent) or (
        sent_at is not None and sent_at > now - timedelta(seconds=machine_opens.machine_open_seconds())
    )


def _locked_email(email_id: int, *fields: str, **lookups: object) -> tuple[Any, ...] | None:
    """(campaign_id, sent_at, *fields) of the Email, its row locked to the end of the transaction:
    the tracking requests of one email take turns, so each sees the events of the one before."""
    return (
        Email.objects.select_for_update(of=("self",))
        .filter(pk=email_id, **lookups)
        .values_list("campaign_id", "sent_at", *fields)
        .first()
    )


def _record_event_unless_repeated(
    *,
    email_id: int,
    campaign_id: int,
    kind: str,
    link_id: int | None,
    user_agent: str,
    is_machine: bool,
    now: datetime,
) -> bool:
    """Insert the Event unless one of the same email, kind, link and reader-or-machine was recorded
    within TRACKING_REPEAT_SECONDS before `now`; True when inserted.

    A reader and a machine (a scanner at delivery) are told apart, so a scanner's fetch never
    hides the reader's own open or click; one URL requested over and over writes one row a window.
    """
    cutoff = now - timedelta(seconds=settings.TRACKING_REPEAT_SECONDS)
    ops = connection.ops
    event_table = Event._meta.db_table
    link_is = "link_id IS NULL" if link_id is None else "link_id = %s"
    link_params = [] if link_id is None else [link_id]
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            INSERT INTO {event_table} (email_id, campaign_id, kind, at, link_id, user_agent, is_machine)
            SELECT %s, %s, %s, %s, %s, %s, %s
            WHERE NOT EXISTS (
                SELECT 1 FROM {event_table}
                WHERE email_id = %s AND kind = %s AND {link_is} AND is_machine = %s AND at > %s
            )
            """,
            [
                email_id,
                campaign_id,
                kind,
                ops.adapt_datetimefield_value(now),
                link_id,
                user_agent,
                is_machine,
                email_id,
                kind,
                *link_params,
                is_machine,
                ops.adapt_datetimefield_value(cutoff),
            ],
        )
        inserted: int = cursor.rowcount
        return inserted == 1


def record_open(*, email_id: int, user_agent: str | None, now: datetime, account_id: int | None = None) -> int:
    """One transaction: the Email row locked, the Event, and the counters when a reader opened it.

    A repeat within TRACKING_REPEAT_SECONDS records nothing, and nothing is written for an
    Email that no longer exists (its campaign deleted), nor, on an account's tracking domain
    (`account_id`), for another account's email. Returns the Email rows updated.
    """
    user_agent = (user_agent or "")[:USER_AGENT_MAX_LENGTH]
    with transaction.atomic():
        row = _locked_email(email_id, **served_on(account_id))
        if row is None:
            return 0
        campaign_id, sent_at = row
        is_machine = _is_machine(user_agent=user_agent, sent_at=sent_at, now=now)
        if not _record_event_unless_repeated(
            email_id=email_id,
            campaign_id=campaign_id,
            kind=Event.Kind.OPEN,
            link_id=None,
            user_agent=user_agent,
            is_machine=is_machine,
            now=now,
        ):
            return 0
        rows = Email.objects.filter(pk=email_id)
        if is_machine:
            return rows.update(machine_open=True)
        return rows.update(
            open_count=F("open_count") + 1,
            first_opened_at=Case(When(first_opened_at__isnull=True, then=Value(now)), default=F("first_opened_at")),
        )


def record_click(
    *, email_id: int, link_id: int, user_agent: str | None, now: datetime, account_id: int | None = None
) -> str | None:
    """The URL to redirect to, or None when the link is not a stored Link of the email's campaign (or,
    on an account's tracking domain, the email is another account's).

    A repeat within TRACKING_REPEAT_SECONDS (same email and link) records nothing and still
    answers the URL."""
    user_agent = (user_agent or "")[:USER_AGENT_MAX_LENGTH]
    with transaction.atomic():
        row = _locked_email(email_id, "campaign__links__url", campaign__links__pk=link_id, **served_on(account_id))
        if row is None:
            return None
        url: str
        campaign_id, sent_at, url = row
        is_machine = _is_machine(user_agent=user_agent, sent_at=sent_at, now=now)
        recorded = _record_event_unless_repeated(
            email_id=email_id,
            campaign_id=campaign_id,
            kind=Event.Kind.CLICK,
            link_id=link_id,
            user_agent=user_agent,
            is_machine=is_machine,
            now=now,
        )
        if recorded and not is_machine:
            Email.objects.filter(pk=email_id).update(
                click_count=F("click_count") + 1,
                first_clicked_at=Case(
                    When(first_clicked_at__isnull=True, then=Value(now)), default=F("first_clicked_at")
                ),
                # A reader who clicks has opened it, even with images blocked.
                first_opened_at=Case(When(first_opened_at__isnull=True, then=Value(now)), default=F("first_opened_at")),
                open_count=Case(
                    When(open_count=0, then=Value(1)), default=F("open_count"), output_field=PositiveIntegerField()
                ),
            )
    return url


@dataclass
class Recipient:
    """What the public unsubscribe pages show: the sender's name, never the address."""

    email_id: int
    organization: str
    already_unsubscribed: bool


def recipient_for_unsubscribe(*, email_id: int, account_id: int | None = None) -> Recipient | None:
    """Read only (GET must change nothing). None for an Email that no longer exists, or another
    account's on an account's tracking domain."""
    email = (
        Email.objects.filter(pk=email_id, **served_on(account_id))
        .select_related("campaign__owner", "campaign__smtp_account", "contact")
        .first()
    )
    if email is None:
        return None
    return Recipient(
        email_id=email.pk,
        organization=organization_of(email.campaign),
        already_unsubscribed=email.unsubscribed_at is not None
        or (email.contact is not None and email.contact.status == Contact.Status.UNSUBSCRIBED),
    )


def organization_of(campaign: Campaign) -> str:
    owner = campaign.owner
    account = campaign.smtp_account
    return owner.organization or (account.from_name if account else "") or owner.get_full_name() or owner.username


def unsubscribe(
    *, email_id: int, user_agent: str | None, now: datetime, account_id: int | None = None
) -> Recipient | None:
    """Unsubscribe the recipient of this Email, at once and idempotently.

    The contact becomes unsubscribed (a bounced or complained one stays so: still
    suppressed), the Email records unsubscribed_at, one Event is stored, and the
    contact's unsent emails in every campaign of the owner are cancelled.
    Returns the Recipient, or None when the Email no longer exists (or, on an account's tracking
    domain, is another account's).
    """
    with transaction.atomic():
        email = (
            Email.objects.filter(pk=email_id, **served_on(account_id))
            .select_related("campaign__owner", "campaign__smtp_account")
            .first()
        )
        if email is None:
            return None
        first_time = Email.objects.filter(pk=email_id, unsubscribed_at__isnull=True).update(unsubscribed_at=now)
        if first_time:
            Event.objects.create(
                email_id=email_id,
                campaign_id=email.campaign_id,
                kind=Event.Kind.UNSUBSCRIBE,
                user_agent=(user_agent or "")[:USER_AGENT_MAX_LENGTH],
            )
        if email.contact_id is not None:
            contacts.suppress(contact_ids=[email.contact_id], status=Contact.Status.UNSUBSCRIBED, now=now)
    return Recipient(email_id=email_id, organization=organization_of(email.campaign), already_unsubscribed=True)


def record_report_event(*, email_id: int, campaign_id: int, kind: str) -> None:
    """The Event of a bounce or complaint a delivery report brought (bounces.services calls it once per
    report it recorded on the Email row), for the activity feeds."""
    if kind not in (Event.Kind.BOUNCE, Event.Kind.COMPLAINT):
        raise ValueError(f"{kind!r} is not a delivery report's event")
    Event.objects.create(email_id=email_id, campaign_id=campaign_id, kind=kind)


def record_report_events(*, events: Iterable[tuple[int, int, str]]) -> None:
    """`record_report_event` for many reports at once, one INSERT: (email id, campaign id, kind) each."""
    rows = []
    for email_id, campaign_id, kind in events:
        if kind not in (Event.Kind.BOUNCE, Event.Kind.COMPLAINT):
            raise ValueError(f"{kind!r} is not a delivery report's event")
        rows.append(Event(email_id=email_id, campaign_id=campaign_id, kind=kind))
    if rows:
        Event.objects.bulk_create(rows)


def store_links(*, campaign_id: int, urls: Iterable[str]) -> dict[str, int]:
    """{url: link id} for these URLs of a campaign, creating the missing Link rows (at most three queries)."""
    urls = {u for u in urls if u and len(u) <= URL_MAX_LENGTH}
    if not urls:
        return {}
    found = dict(Link.objects.filter(campaign_id=campaign_id, url__in=urls).values_list("url", "id"))
    missing = urls - found.keys()
    if missing:
        Link.objects.bulk_create([Link(campaign_id=campaign_id, url=u) for u in missing], ignore_conflicts=True)
        found.update(Link.objects.filter(campaign_id=campaign_id, url__in=missing).values_list("url", "id"))
    return found
