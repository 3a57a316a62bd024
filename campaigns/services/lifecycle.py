"""Campaign lifecycle: schedule, send now, start, pause, resume, cancel, complete, duplicate, retry, extend.

The only writer of Campaign.status. Admin actions, manage.py commands, the dispatcher (start)
and the workers (complete) call these; each status change is a conditional UPDATE on the
status it expects, and writes a CampaignEvent (who, from, to, why) in the same transaction.
`acting_user` None is the system; a command passes None and its name as the reason.

Imports go one way: the sending engine (delivery.dispatcher, delivery.sender) calls this
module, which uses campaigns.ledger for the Email rows; ledger imports no service.
"""

import logging
import re
import time
import zoneinfo
from collections.abc import Callable, Collection, Iterable
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from accounts.models import User
from campaigns import ledger, personalize
from campaigns.models import Campaign, CampaignEvent, CampaignTally
from campaigns.selectors import audience

log = logging.getLogger(__name__)

C = Campaign.Status
# A time typed for "now" is a little behind by the time the action runs.
PAST_SCHEDULE_GRACE = timedelta(minutes=1)


class LifecycleError(Exception):
    pass


# CAN-SPAM asks for a valid postal address in every commercial message: the footer carries the owner's
# (accounts.User.footer_postal_address), so nothing goes out without one.
MISSING_POSTAL_ADDRESS = (
    "add your postal address under My profile (the law asks for one in the footer of every campaign email)"
)


def problems_before_scheduling(*, campaign: Campaign) -> list[str]:
    problems = []
    account = campaign.smtp_account
    if account is None:
        problems.append("choose an SMTP account")
    elif account.owner_id != campaign.owner_id:
        problems.append("the SMTP account belongs to someone else")
    if not campaign.subject.strip():
        problems.append("write a subject")
    if not (campaign.body_html or "").strip() and not (campaign.body_text or "").strip():
        problems.append("write a body")
    for label, source in (
        ("subject", campaign.subject),
        ("HTML body", campaign.body_html),
        ("text body", campaign.body_text),
    ):
        try:
            personalize.validate(source or "")
        except personalize.PersonalizationError as exc:
            # Checked on save too; an older draft must still fail here, never at send time.
            problems.append(f"fix the {label}: {' '.join(exc.messages)}")
    problems += _problems_with_audience(campaign=campaign)
    if not campaign.owner.footer_postal_address:
        problems.append(MISSING_POSTAL_ADDRESS)
    return problems


def _problems_with_audience(*, campaign: Campaign) -> list[str]:
    if campaign.source_rule:
        # A resend's audience is its source campaign's recipients, not lists.
        source = campaign.source_campaign
        if source is None:
            return ["the campaign it resends was deleted; duplicate this one and choose lists instead"]
        if source.owner_id != campaign.owner_id:
            return ["the campaign it resends belongs to someone else"]
        return []
    if not campaign.lists.exists() and not campaign.segments.exists():
        return ["choose at least one contact list or segment"]
    problems = []
    if campaign.lists.exclude(owner_id=campaign.owner_id).exists():
        problems.append("a chosen list belongs to someone else")
    if campaign.segments.exclude(owner_id=campaign.owner_id).exists():
        problems.append("a chosen segment belongs to someone else")
    return problems


def parse_local_time(*, text: str, user: User) -> datetime:
    """'2026-12-01 10:00' in the user's own zone -> an aware UTC datetime."""
    try:
        naive = datetime.strptime(text.strip(), "%Y-%m-%d %H:%M")
    except ValueError as exc:
        raise LifecycleError(f"{text!r} is not a time like 2026-12-01 10:00") from exc
    return naive.replace(tzinfo=zoneinfo.ZoneInfo(user.timezone)).astimezone(zoneinfo.ZoneInfo("UTC"))


def schedule(
    *,
    campaign: Campaign,
    at: datetime | None = None,
    now: datetime | None = None,
    acting_user: User | None = None,
    reason: str = "",
) -> Campaign:
    """Schedule for `at` (aware) or, without it, send at the next tick."""
    now = now or timezone.now()
    problems = problems_before_scheduling(campaign=campaign) + _problems_with_time(campaign=campaign, at=at, now=now)
    if problems:
        raise LifecycleError("Cannot schedule: " + "; ".join(problems) + ".")
    moved = _move(
        campaign_id=campaign.pk,
        allowed=(C.DRAFT,),
        to=C.SCHEDULED,
        now=now,
        acting_user=acting_user,
        reason=reason,
        scheduled_at=at or now,
        status_reason="",
    )
    if not moved:
        raise LifecycleError(f"Only a draft can be scheduled; this campaign is {_status_of(campaign)}.")
    campaign.refresh_from_db()
    return campaign


def _problems_with_time(*, campaign: Campaign, at: datetime | None, now: datetime) -> list[str]:
    # A started campaign's time is past by nature; "only a draft can be scheduled" is its answer.
    if at is None or campaign.status != C.DRAFT or at >= now - PAST_SCHEDULE_GRACE:
        return []
    zone = campaign.owner.timezone
    local = timezone.localtime(at, timezone=zoneinfo.ZoneInfo(zone))
    return [f"{local:%Y-%m-%d %H:%M} {zone} is in the past; choose a later time, or use Send now to send at once"]


def send_now(
    *,
    campaign: Campaign,
    now: datetime | None = None,
    acting_user: User | None = None,
    reason: str = "",
    dispatch_now: Callable[[], object] | None = None,
) -> Campaign:
    """Schedule for now and start at once. A small audience is written before this returns; a
    large one's first chunks are, and the dispatcher's ticks write the rest while it sends.

    `dispatch_now()` asks for a tick at once (delivery.tasks.dispatch_now; this module imports no
    task), so the first batch is claimed now rather than at the next interval."""
    now = now or timezone.now()
    schedule(campaign=campaign, at=now, now=now, acting_user=acting_user, reason=reason)
    start(campaign_id=campaign.pk, now=now, acting_user=acting_user, reason=reason)
    if dispatch_now is not None:
        dispatch_now()
    campaign.refresh_from_db()
    return campaign


def start(
    *,
    campaign_id: int,
    now: datetime,
    acting_user: User | None = None,
    reason: str = "",
    prepare_seconds: float | None = None,
) -> int | None:
    """scheduled -> sending with its recipients' preparation begun, in one short transaction; then
    the first chunks of recipients (prepare_recipients, for `prepare_seconds` at most).

    Returns the number of recipients written so far, or None when the campaign was not scheduled
    (started by someone else meanwhile, paused, cancelled). The dispatcher starts due campaigns here,
    and its ticks write the rest of a large audience (continue_preparing) while it sends: one
    statement for the whole audience would hold its transaction, and the tick, until all is written.
    """
    campaign = Campaign.objects.filter(pk=campaign_id, status=C.SCHEDULED).first()
    if campaign is None:
        return None
    # Counted before the transaction, for "preparing recipients (n of N)"; an estimate, as contacts
    # may join or leave the lists while the recipients are written.
    expected = audience.audience_count(campaign=campaign)
    with transaction.atomic():
        moved = Campaign.objects.filter(pk=campaign_id, status=C.SCHEDULED).update(
            status=C.SENDING,
            started_at=now,
            status_reason="",
            updated_at=now,
            recipients_cursor=0,
            recipients_expected=expected,
        )
        if not moved:
            return None
        _record_events(
            campaign_ids=[campaign_id],
            from_status=C.SCHEDULED,
            to_status=C.SENDING,
            now=now,
            acting_user=acting_user,
            reason=reason,
        )
    created = prepare_recipients(campaign_id=campaign_id, now=now, seconds=prepare_seconds)
    log.info("campaign %s started with %s recipient(s) so far", campaign_id, created)
    return created


def prepare_recipients(*, campaign_id: int, now: datetime, seconds: float | None = None) -> int:
    """Write the campaign's next chunks of recipients, in contact-id order, until all are written
    or `seconds` (RECIPIENTS_PREPARE_SECONDS) have passed; one chunk at least. Returns the rows created.

    Each chunk is one transaction: its rows and the campaign's cursor commit together, under the
    campaign row's lock. A process killed mid-chunk loses that chunk's rows and its cursor alike, and
    whoever continues starts from the cursor; two preparing at once take turns on the lock, each
    reading the cursor the other left. Nobody is missed or written twice.
    """
    seconds = settings.RECIPIENTS_PREPARE_SECONDS if seconds is None else seconds
    deadline = time.monotonic() + seconds
    created = 0
    while True:
        written, finished = _prepare_chunk(campaign_id=campaign_id, now=now)
        created += written
        if finished or time.monotonic() >= deadline:
            return created


def _prepare_chunk(*, campaign_id: int, now: datetime) -> tuple[int, bool]:
    """One chunk of recipients and the cursor after it: (rows created, whether preparation is over)."""
    with transaction.atomic():
        row = (
            Campaign.objects.select_for_update()
            .filter(pk=campaign_id)
            .values_list("status", "recipients_cursor")
            .first()
        )
        if row is None:
            return 0, True
        status, cursor = row
        if cursor is None:
            return 0, True
        created, through = ledger.materialise_chunk(
            campaign_id=campaign_id, after_contact_id=cursor, size=settings.RECIPIENTS_CHUNK_SIZE, now=now
        )
        Campaign.objects.filter(pk=campaign_id).update(recipients_cursor=through)
        if created and status == C.COMPLETED:  # extended after it completed: it sends again
            _reopen(campaign=Campaign(pk=campaign_id), now=now, acting_user=None, reason="extended to new contacts")
    return created, through is None


def continue_preparing(*, now: datetime, seconds: float | None = None) -> int:
    """The dispatcher's share of the preparation: chunks of every campaign still being prepared,
    oldest start first, one chunk each in turn (each at least one per tick), until all are written
    or `seconds` (RECIPIENTS_PREPARE_SECONDS) have passed. Returns the rows created."""
    seconds = settings.RECIPIENTS_PREPARE_SECONDS if seconds is None else seconds
    deadline = time.monotonic() + seconds
    created = 0
    preparing = list(
        Campaign.objects.filter(recipients_cursor__isnull=False)
        .order_by("started_at", "pk")
        .values_list("pk", flat=True)
    )
    first_round = True
    while preparing and (first_round or time.monotonic() < deadline):
        for campaign_id in list(preparing):
            if not first_round and time.monotonic() >= deadline:
                break
            written, finished = _prepare_chunk(campaign_id=campaign_id, now=now)
            created += written
            if finished:
                preparing.remove(campaign_id)
        first_round = False
    return created


def unschedule(
    *, campaign: Campaign, now: datetime | None = None, acting_user: User | None = None, reason: str = ""
) -> Campaign:
    now = now or timezone.now()
    if not _move(
        campaign_id=campaign.pk, allowed=(C.SCHEDULED,), to=C.DRAFT, now=now, acting_user=acting_user, reason=reason
    ):
        raise LifecycleError(f"Only a scheduled campaign can go back to draft; this one is {_status_of(campaign)}.")
    campaign.refresh_from_db()
    return campaign


def pause(
    *, campaign: Campaign, reason: str = "", now: datetime | None = None, acting_user: User | None = None
) -> Campaign:
    """Stop claiming. Claimed batches no worker has taken yet come back at once; a batch being sent
    stops before its next message (the sender checks) and hands its rows back."""
    now = now or timezone.now()
    with transaction.atomic():
        moved = _move(
            campaign_id=campaign.pk,
            allowed=(C.SENDING, C.SCHEDULED),
            to=C.PAUSED,
            now=now,
            acting_user=acting_user,
            reason=reason,
            status_reason=reason,
        )
        if not moved:
            raise LifecycleError(
                f"Only a sending or scheduled campaign can be paused; this one is {_status_of(campaign)}."
            )
        ledger.take_back_waiting_batches(campaign_id=campaign.pk, now=now)
    campaign.refresh_from_db()
    return campaign


def resume(
    *,
    campaign: Campaign,
    now: datetime | None = None,
    acting_user: User | None = None,
    reason: str = "",
    dispatch_now: Callable[[], object] | None = None,
) -> Campaign:
    """Continue where it stopped: unsent rows are claimed again, sent ones never.

    A campaign paused before it started is scheduled again (the dispatcher starts it when due).
    `dispatch_now()`, as for send_now, asks for a tick at once."""
    now = now or timezone.now()
    with transaction.atomic():
        started = Campaign.objects.filter(pk=campaign.pk).values_list("started_at", flat=True).first()
        moved = _move(
            campaign_id=campaign.pk,
            allowed=(C.PAUSED,),
            to=C.SENDING if started else C.SCHEDULED,
            now=now,
            acting_user=acting_user,
            reason=reason,
            status_reason="",
        )
    if not moved:
        raise LifecycleError(f"Only a paused campaign can be resumed; this one is {_status_of(campaign)}.")
    if dispatch_now is not None:
        dispatch_now()
    campaign.refresh_from_db()
    return campaign


def cancel(
    *, campaign: Campaign, now: datetime | None = None, acting_user: User | None = None, reason: str = ""
) -> Campaign:
    """Stop for good: unsent rows are cancelled; a batch in flight stops before its next message.

    Nothing is sent once this returns (claims read sending campaigns only). A large campaign's unsent
    rows are cancelled in chunks: the first here, for RECIPIENTS_PREPARE_SECONDS at most, the rest by
    the dispatcher's ticks (ledger.cancel_unsent_of_cancelled). Its preparation, if any, stops."""
    now = now or timezone.now()
    with transaction.atomic():
        moved = _move(
            campaign_id=campaign.pk,
            allowed=(C.DRAFT, C.SCHEDULED, C.SENDING, C.PAUSED),
            to=C.CANCELLED,
            now=now,
            acting_user=acting_user,
            reason=reason,
            completed_at=now,
            recipients_cursor=None,
        )
        if not moved:
            raise LifecycleError(f"This campaign is {_status_of(campaign)} and cannot be cancelled.")
        ledger.take_back_waiting_batches(campaign_id=campaign.pk, now=now)
    deadline = time.monotonic() + settings.RECIPIENTS_PREPARE_SECONDS
    while ledger.cancel_unsent_chunk(campaign_id=campaign.pk, now=now, limit=settings.RECIPIENTS_CHUNK_SIZE):
        if time.monotonic() >= deadline:
            break
    campaign.refresh_from_db()
    return campaign


COMPLETED_REASON = "no unsent emails left"


def complete_finished(*, now: datetime, campaign_ids: Collection[int] | None = None) -> int:
    """Sending campaigns with no open rows become completed (all of them, or these); returns how many.
    Never one whose recipients are still being written (recipients_cursor set): it has more to come.

    Read from the tallies (exact: kept by triggers in the same transaction as the rows), so no
    index of the Email table by (campaign, status) has to be written at every status change.
    Plain SQL: every batch runs it, and the ORM's compiling of it costs more than the
    statement itself (measured in BENCHMARKS.md, Costs behind the code). The completion and its
    events are one statement (an UPDATE ... RETURNING id feeding the INSERT), so the common case,
    nothing completed, costs what the UPDATE alone does: no transaction to open around it.
    """
    which = ""
    ids: list[int] = []
    if campaign_ids is not None:
        if not campaign_ids:
            return 0
        ids = sorted(campaign_ids)
        which = f"AND id IN ({', '.join(['%s'] * len(ids))})"
    table = Campaign._meta.db_table
    update = f"""
        UPDATE {table} SET status = %s, completed_at = %s, updated_at = %s
        WHERE status = %s {which} AND recipients_cursor IS NULL AND NOT EXISTS (
            SELECT 1 FROM {CampaignTally._meta.db_table} t
            WHERE t.campaign_id = {table}.id AND t.status IN (%s, %s, %s) AND t.n > 0
        )
        RETURNING id
    """
    sql = f"""
        WITH completed AS ({update})
        INSERT INTO {CampaignEvent._meta.db_table} (campaign_id, at, from_status, to_status, acting_user_id, reason)
        SELECT id, %s, %s, %s, NULL, %s FROM completed
    """
    params: list[str | int | datetime] = [
        C.COMPLETED,
        now,
        now,
        C.SENDING,
        *ids,
        *ledger.OPEN_STATUSES,
        now,
        C.SENDING,
        C.COMPLETED,
        COMPLETED_REASON,
    ]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        completed: int = cursor.rowcount
        return completed


def duplicate(*, campaign: Campaign) -> Campaign:
    """A new draft with the same message, account and audience (its lists and segments, or the resend's source
    and rule)."""
    with transaction.atomic():
        copy = _draft_with_the_message_of(
            campaign,
            name=copy_name(campaign),
            source_campaign=campaign.source_campaign,
            source_rule=campaign.source_rule,
        )
        copy.lists.set(campaign.lists.all())
        copy.segments.set(campaign.segments.all())
    return copy


# " (copy)" or " (copy 7)" at the end of a name: a copy's own suffix, replaced rather than repeated.
COPY_SUFFIX = re.compile(r" \(copy(?: (?P<number>[0-9]+))?\)$")


def copy_name(campaign: Campaign) -> str:
    """The first free name among "X (copy)", "X (copy 2)", "X (copy 3)"… of the owner's campaigns, where X is
    the name without its own copy suffix: a copy of a copy is "X (copy 2)", never "X (copy) (copy)"."""
    base = COPY_SUFFIX.sub("", campaign.name)
    name_max = Campaign._meta.get_field("name").max_length
    assert name_max is not None  # a CharField always has one
    stem = base[: name_max - len(" (copy 99999)")]
    taken = set(
        Campaign.objects.filter(owner_id=campaign.owner_id, name__startswith=f"{stem} (copy").values_list(
            "name", flat=True
        )
    )
    number = 1
    while (name := f"{stem} (copy)" if number == 1 else f"{stem} (copy {number})") in taken:
        number += 1
    return name


def _draft_with_the_message_of(campaign: Campaign, **fields: object) -> Campaign:
    """A new draft with the campaign's owner, account, subject, bodies, tracking and headers, and `fields`."""
    return Campaign.objects.create(
        owner=campaign.owner,
        smtp_account=campaign.smtp_account,
        subject=campaign.subject,
        body_html=campaign.body_html,
        body_text=campaign.body_text,
        text_only=campaign.text_only,
        track_opens=campaign.track_opens,
        track_clicks=campaign.track_clicks,
        custom_headers=campaign.custom_headers,
        **fields,
    )


RESEND_SUFFIX = " (resend to non-openers)"


def resend_to_non_openers(*, campaign: Campaign) -> Campaign:
    """A new draft with the same message, account and tracking, to those the campaign reached who did not open it.

    Who they are is decided at the new campaign's start (ledger.materialise_statement): its contacts
    still subscribed then, whose email of this campaign was sent and has no reader's open.
    """
    if campaign.status != C.COMPLETED:
        raise LifecycleError(
            f"Only a completed campaign can be resent to its non-openers; this one is {_status_of(campaign)}."
        )
    name_max = Campaign._meta.get_field("name").max_length
    assert name_max is not None  # a CharField always has one
    return _draft_with_the_message_of(
        campaign,
        name=campaign.name[: name_max - len(RESEND_SUFFIX)] + RESEND_SUFFIX,
        source_campaign=campaign,
        source_rule=Campaign.SourceRule.NOT_OPENED,
    )


def retry_failed(
    *,
    campaign: Campaign,
    email_ids: list[int] | None = None,
    now: datetime | None = None,
    acting_user: User | None = None,
) -> int:
    """Failed emails (all, or those chosen) go back to pending; a finished campaign sends again."""
    now = now or timezone.now()
    with transaction.atomic():
        # Locked so a cancel cannot land between this check and the rows' return to pending.
        status = Campaign.objects.select_for_update().filter(pk=campaign.pk).values_list("status", flat=True).first()
        if status == C.CANCELLED:
            raise LifecycleError("a cancelled campaign sends nothing more; duplicate it to send again.")
        count = ledger.retry_failed(campaign_id=campaign.pk, now=now, email_ids=email_ids)
        if count and status == C.COMPLETED:
            _reopen(campaign=campaign, now=now, acting_user=acting_user, reason=f"{count} failed email(s) retried")
    return count


def remove_pending(*, campaign: Campaign, email_ids: list[int], now: datetime | None = None) -> tuple[int, int]:
    """Take recipients out before they are sent (pending or deferred rows only): (removed, in flight).

    Queued rows stay with the worker holding their batch, which may be sending one this very
    moment (cancelled under it, a delivered message would read cancelled); they are counted so
    the owner learns they go out with that batch.
    """
    now = now or timezone.now()
    removed = ledger.cancel_open(campaign_id=campaign.pk, now=now, email_ids=email_ids)
    in_flight = campaign.emails.filter(id__in=email_ids, status=ledger.S.QUEUED).count()
    return removed, in_flight


def extend_to_new_contacts(*, campaign: Campaign, now: datetime | None = None, acting_user: User | None = None) -> int:
    """Add contacts that joined the campaign's lists since it started; nobody already in it is touched.

    Written as a start's recipients are, in chunks from the first contact (ON CONFLICT skips those
    already in it): the first chunks here, the rest by the dispatcher's ticks. Returns the rows
    added here. A completed campaign given new rows sends again."""
    now = now or timezone.now()
    if campaign.status not in (C.SENDING, C.COMPLETED, C.PAUSED):
        raise LifecycleError("Only a started campaign can be extended.")
    expected = audience.audience_count(campaign=campaign)
    with transaction.atomic():
        Campaign.objects.select_for_update().filter(pk=campaign.pk).values_list("pk").first()
        # Already being prepared: that preparation reaches the new contacts too (they come later in id order).
        Campaign.objects.filter(pk=campaign.pk, recipients_cursor__isnull=True).update(
            recipients_cursor=0, recipients_expected=expected
        )
    return prepare_recipients(campaign_id=campaign.pk, now=now)


def _reopen(*, campaign: Campaign, now: datetime, acting_user: User | None, reason: str) -> None:
    """A completed campaign with new unsent rows sends again (no-op for any other status)."""
    _move(
        campaign_id=campaign.pk,
        allowed=(C.COMPLETED,),
        to=C.SENDING,
        now=now,
        acting_user=acting_user,
        reason=reason,
        completed_at=None,
    )


def _move(
    *,
    campaign_id: int,
    allowed: Collection[str],
    to: str,
    now: datetime,
    acting_user: User | None,
    reason: str,
    **fields: object,
) -> str | None:
    """The campaign's status from one of `allowed` to `to`, and its event, in one transaction.

    Returns the status it left, or None when it was in none of them. The row is locked while
    read, and the UPDATE is still conditional on what was read.
    """
    with transaction.atomic():
        current = Campaign.objects.select_for_update().filter(pk=campaign_id).values_list("status", flat=True).first()
        if current is None or current not in allowed:
            return None
        if not Campaign.objects.filter(pk=campaign_id, status=current).update(status=to, updated_at=now, **fields):
            return None
        _record_events(
            campaign_ids=[campaign_id],
            from_status=current,
            to_status=to,
            now=now,
            acting_user=acting_user,
            reason=reason,
        )
    return current


def _record_events(
    *,
    campaign_ids: Iterable[int],
    from_status: str,
    to_status: str,
    now: datetime,
    acting_user: User | None,
    reason: str,
) -> None:
    CampaignEvent.objects.bulk_create(
        [
            CampaignEvent(
                campaign_id=campaign_id,
                at=now,
                from_status=from_status,
                to_status=to_status,
                acting_user=acting_user,
                reason=reason,
            )
            for campaign_id in campaign_ids
        ]
    )


def _status_of(campaign: Campaign) -> str:
    return Campaign.objects.filter(pk=campaign.pk).values_list("status", flat=True).first() or "gone"
