"""Campaign lifecycle: schedule, send now, pause, resume, cancel, duplicate, retry, extend.

Admin actions and manage.py commands call these; each status change is a
conditional UPDATE on the status it expects.
"""

import zoneinfo
from datetime import datetime, timedelta

from django.db import transaction
from django.utils import timezone

from campaigns import personalize
from campaigns.delivery import dispatcher, ledger
from campaigns.models import Campaign

C = Campaign.Status
# A time typed for "now" is a little behind by the time the action runs.
PAST_SCHEDULE_GRACE = timedelta(minutes=1)


class LifecycleError(Exception):
    pass


def problems_before_scheduling(*, campaign):
    problems = []
    if campaign.smtp_account_id is None:
        problems.append("choose an SMTP account")
    elif campaign.smtp_account.owner_id != campaign.owner_id:
        problems.append("the SMTP account belongs to someone else")
    if not campaign.subject.strip():
        problems.append("write a subject")
    if not (campaign.body_html or "").strip() and not (campaign.body_text or "").strip():
        problems.append("write a body")
    for label, source in (("subject", campaign.subject), ("HTML body", campaign.body_html), ("text body", campaign.body_text)):
        try:
            personalize.validate(source or "")
        except personalize.PersonalizationError as exc:
            # Checked on save too; an older draft must still fail here, never at send time.
            problems.append(f"fix the {label}: {' '.join(exc.messages)}")
    if not campaign.lists.exists():
        problems.append("choose at least one contact list")
    elif campaign.lists.exclude(owner_id=campaign.owner_id).exists():
        problems.append("a chosen list belongs to someone else")
    return problems


def parse_local_time(*, text, user):
    """'2026-12-01 10:00' in the user's own zone -> an aware UTC datetime."""
    try:
        naive = datetime.strptime(text.strip(), "%Y-%m-%d %H:%M")
    except ValueError as exc:
        raise LifecycleError(f"{text!r} is not a time like 2026-12-01 10:00") from exc
    return naive.replace(tzinfo=zoneinfo.ZoneInfo(user.timezone)).astimezone(zoneinfo.ZoneInfo("UTC"))


def schedule(*, campaign, at=None, now=None):
    """Schedule for `at` (aware) or, without it, send at the next tick."""
    now = now or timezone.now()
    problems = problems_before_scheduling(campaign=campaign) + _problems_with_time(campaign=campaign, at=at, now=now)
    if problems:
        raise LifecycleError("Cannot schedule: " + "; ".join(problems) + ".")
    when = at or now
    moved = Campaign.objects.filter(pk=campaign.pk, status=C.DRAFT).update(
        status=C.SCHEDULED, scheduled_at=when, status_reason="", updated_at=now
    )
    if not moved:
        raise LifecycleError(f"Only a draft can be scheduled; this campaign is {_status_of(campaign)}.")
    campaign.refresh_from_db()
    return campaign


def _problems_with_time(*, campaign, at, now):
    # A started campaign's time is past by nature; "only a draft can be scheduled" is its answer.
    if at is None or campaign.status != C.DRAFT or at >= now - PAST_SCHEDULE_GRACE:
        return []
    zone = campaign.owner.timezone
    local = timezone.localtime(at, timezone=zoneinfo.ZoneInfo(zone))
    return [f"{local:%Y-%m-%d %H:%M} {zone} is in the past; choose a later time, or use Send now to send at once"]


def send_now(*, campaign, now=None):
    """Schedule for now and start at once, so the recipients exist before this returns."""
    now = now or timezone.now()
    schedule(campaign=campaign, at=now, now=now)
    dispatcher.start_campaign(campaign_id=campaign.pk, now=now)
    campaign.refresh_from_db()
    return campaign


def unschedule(*, campaign, now=None):
    now = now or timezone.now()
    if not Campaign.objects.filter(pk=campaign.pk, status=C.SCHEDULED).update(status=C.DRAFT, updated_at=now):
        raise LifecycleError(f"Only a scheduled campaign can go back to draft; this one is {_status_of(campaign)}.")
    campaign.refresh_from_db()
    return campaign


def pause(*, campaign, reason="", now=None):
    """Stop claiming. Claimed batches no worker has taken yet come back at once; a batch being sent
    stops before its next message (the sender checks) and hands its rows back."""
    now = now or timezone.now()
    with transaction.atomic():
        moved = Campaign.objects.filter(pk=campaign.pk, status__in=[C.SENDING, C.SCHEDULED]).update(
            status=C.PAUSED, status_reason=reason, updated_at=now
        )
        if not moved:
            raise LifecycleError(
                f"Only a sending or scheduled campaign can be paused; this one is {_status_of(campaign)}."
            )
        ledger.take_back_waiting_batches(campaign_id=campaign.pk, now=now)
    campaign.refresh_from_db()
    return campaign


def resume(*, campaign, now=None):
    """Continue where it stopped: unsent rows are claimed again, sent ones never."""
    now = now or timezone.now()
    with transaction.atomic():
        if campaign.started_at is None:
            moved = Campaign.objects.filter(pk=campaign.pk, status=C.PAUSED).update(
                status=C.SCHEDULED, status_reason="", updated_at=now
            )
        else:
            moved = Campaign.objects.filter(pk=campaign.pk, status=C.PAUSED).update(
                status=C.SENDING, status_reason="", updated_at=now
            )
    if not moved:
        raise LifecycleError(f"Only a paused campaign can be resumed; this one is {_status_of(campaign)}.")
    campaign.refresh_from_db()
    return campaign


def cancel(*, campaign, now=None):
    """Stop for good: unsent rows are cancelled; a batch in flight stops before its next message."""
    now = now or timezone.now()
    with transaction.atomic():
        moved = Campaign.objects.filter(pk=campaign.pk, status__in=[C.DRAFT, C.SCHEDULED, C.SENDING, C.PAUSED]).update(
            status=C.CANCELLED, completed_at=now, updated_at=now
        )
        if not moved:
            raise LifecycleError(f"This campaign is {_status_of(campaign)} and cannot be cancelled.")
        ledger.take_back_waiting_batches(campaign_id=campaign.pk, now=now)
        ledger.cancel_open(campaign_id=campaign.pk, now=now)
    campaign.refresh_from_db()
    return campaign


def duplicate(*, campaign):
    """A new draft with the same message, account and lists."""
    with transaction.atomic():
        copy = Campaign.objects.create(
            owner=campaign.owner,
            name=f"{campaign.name} (copy)",
            smtp_account=campaign.smtp_account,
            subject=campaign.subject,
            body_html=campaign.body_html,
            body_text=campaign.body_text,
            track_opens=campaign.track_opens,
            track_clicks=campaign.track_clicks,
        )
        copy.lists.set(campaign.lists.all())
    return copy


def retry_failed(*, campaign, email_ids=None, now=None):
    """Failed emails (all, or those chosen) go back to pending; a finished campaign sends again."""
    now = now or timezone.now()
    with transaction.atomic():
        # Locked so a cancel cannot land between this check and the rows' return to pending.
        status = Campaign.objects.select_for_update().filter(pk=campaign.pk).values_list("status", flat=True).first()
        if status == C.CANCELLED:
            raise LifecycleError("a cancelled campaign sends nothing more; duplicate it to send again.")
        count = ledger.retry_failed(campaign_id=campaign.pk, now=now, email_ids=email_ids)
        if count:
            _reopen(campaign=campaign, now=now)
    return count


def remove_pending(*, campaign, email_ids, now=None):
    """Take recipients out before they are sent (pending or deferred rows only): (removed, in flight).

    Queued rows stay with the worker holding their batch, which may be sending one this very
    moment (cancelled under it, a delivered message would read cancelled); they are counted so
    the owner learns they go out with that batch.
    """
    now = now or timezone.now()
    removed = ledger.cancel_open(campaign_id=campaign.pk, now=now, email_ids=email_ids)
    in_flight = campaign.emails.filter(id__in=email_ids, status=ledger.S.QUEUED).count()
    return removed, in_flight


def extend_to_new_contacts(*, campaign, now=None):
    """Add contacts that joined the campaign's lists since it started; nobody already in it is touched."""
    now = now or timezone.now()
    if campaign.status not in (C.SENDING, C.COMPLETED, C.PAUSED):
        raise LifecycleError("Only a started campaign can be extended.")
    with transaction.atomic():
        added = ledger.materialise(campaign_id=campaign.pk, now=now)
        if added:
            _reopen(campaign=campaign, now=now)
    return added


def _reopen(*, campaign, now):
    Campaign.objects.filter(pk=campaign.pk, status=C.COMPLETED).update(
        status=C.SENDING, completed_at=None, updated_at=now
    )


def _status_of(campaign):
    return Campaign.objects.filter(pk=campaign.pk).values_list("status", flat=True).first() or "gone"

