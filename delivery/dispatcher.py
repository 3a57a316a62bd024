"""The dispatcher tick, one at a time: lock, start due campaigns, return due rows, claim, complete."""

import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db.models import Exists, OuterRef, Q, QuerySet
from django.utils import timezone

from accounts.models import User, users_with_access_q
from campaigns import ledger
from campaigns.models import Campaign, DispatcherState
from campaigns.services import lifecycle
from delivery import rate_limit
from sending.addresses import sender_domain
from sending.models import SmtpAccount

log = logging.getLogger(__name__)
DISPATCH_TASK_NAME = "Dispatch pending emails"
LOCK_SECONDS = 120
ClaimedBatch = tuple[int, uuid.UUID, int]  # (account_id, batch_id, size)


@dataclass
class TickReport:
    ran: bool = False
    started: list[int] = field(default_factory=list)
    prepared: int = 0  # recipients written for campaigns being prepared
    returned: int = 0
    batches: list[ClaimedBatch] = field(default_factory=list)
    completed: int = 0

    @property
    def claimed(self) -> int:
        return sum(size for _, _, size in self.batches)


def tick(*, enqueue: Callable[[uuid.UUID], object], now: datetime | None = None) -> TickReport:
    """Run one tick; `enqueue(batch_id)` hands each claimed batch to the workers (delivery.tasks
    passes its send_batch task, tests a function of their own: the engine never imports the tasks)."""
    clock_now = now or timezone.now()
    token = uuid.uuid4().hex
    if not _acquire_lock(token=token, now=clock_now):
        log.info("dispatcher: another tick is running; skipped")
        return TickReport(ran=False)
    started = time.monotonic()
    report = TickReport(ran=True)
    try:
        with ledger.ledger_commits():
            report.started = start_due_campaigns(now=clock_now)
            # A large audience is written in chunks over several ticks, each tick for a bounded time,
            # so the claims below (of every account) and the next tick are never held up for long.
            report.prepared = lifecycle.continue_preparing(now=clock_now)
            deferred, expired = ledger.return_due(now=clock_now)
            report.returned = deferred + expired
            ledger.forget_takes(now=clock_now)
            # Each batch is handed to the workers as soon as it is claimed: otherwise no worker
            # would start before the end of a tick claiming a large campaign's many batches.
            report.batches = claim_batches(
                now=clock_now,
                window_seconds=dispatch_interval_seconds(),
                on_claimed=enqueue,
            )
            report.completed = lifecycle.complete_finished(now=clock_now)
    finally:
        _release_lock(token=token, started_at=clock_now, duration=time.monotonic() - started, claimed=report.claimed)
    return report


# --- step 1: one tick at a time -----------------------------------------------------


def _acquire_lock(*, token: str, now: datetime) -> bool:
    # The row comes from migration campaigns.0002; a conditional UPDATE is the lock.
    # Should it be gone (a flushed database), recreate it rather than skip every tick for good.
    if not DispatcherState.objects.filter(pk=1).exists():
        DispatcherState.objects.get_or_create(pk=1)
    return bool(
        DispatcherState.objects.filter(pk=1)
        .filter(Q(locked_until__isnull=True) | Q(locked_until__lte=now))
        .update(locked_by=token, locked_until=now + timedelta(seconds=LOCK_SECONDS), last_tick_started_at=now)
    )


def _release_lock(*, token: str, started_at: datetime, duration: float, claimed: int) -> None:
    DispatcherState.objects.filter(pk=1, locked_by=token).update(
        locked_by="",
        locked_until=None,
        last_tick_finished_at=started_at + timedelta(seconds=duration),
        last_tick_duration_ms=int(duration * 1000),
        last_tick_claimed=claimed,
    )


# --- step 2: start due campaigns ------------------------------------------------------


def start_due_campaigns(*, now: datetime) -> list[int]:
    due = Campaign.objects.filter(
        status=Campaign.Status.SCHEDULED, scheduled_at__lte=now, owner__in=User.objects.filter(users_with_access_q())
    ).values_list("pk", flat=True)
    # One chunk each here; continue_preparing then shares the tick's preparation time among them all.
    return [
        campaign_id
        for campaign_id in list(due)
        if lifecycle.start(campaign_id=campaign_id, now=now, prepare_seconds=0) is not None
    ]


# --- step 4: claim per account, accounts taking turns ----------------------------------


def dispatch_interval_seconds() -> int:
    from django_celery_beat.models import PeriodicTask

    task = PeriodicTask.objects.filter(name=DISPATCH_TASK_NAME).select_related("interval").first()
    if task is None or task.interval is None:
        from django.conf import settings

        seconds: int = settings.DISPATCH_INTERVAL_SECONDS
        return seconds
    return max(1, int(timedelta(**{task.interval.period: task.interval.every}).total_seconds()))


def sendable_accounts(*, now: datetime) -> QuerySet[SmtpAccount]:
    sending = Campaign.objects.filter(smtp_account=OuterRef("pk"), status=Campaign.Status.SENDING)
    return (
        SmtpAccount.objects.filter(Exists(sending))
        .filter(owner__in=User.objects.filter(users_with_access_q()))
        # Joined to its state row (every account has one): paused, or resting after its server could
        # not be reached, the account is skipped and its emails wait unspent.
        .select_related("state")
        .filter(Q(state__paused_until__isnull=True) | Q(state__paused_until__lte=now))
        .filter(Q(state__backoff_until__isnull=True) | Q(state__backoff_until__lte=now))
        .order_by("state__next_send_at", "pk")
    )


def claim_batches(
    *, now: datetime, window_seconds: float, on_claimed: Callable[[uuid.UUID], object] = lambda batch_id: None
) -> list[ClaimedBatch]:
    """Claim what each sendable account may send (rate_limit.allowance: its limits, and its fair
    share of the workers), in batches, the accounts taking turns."""
    plans = []
    for account in sendable_accounts(now=now):
        campaign_ids = list(
            Campaign.objects.filter(smtp_account=account, status=Campaign.Status.SENDING)
            .order_by("started_at", "pk")
            .values_list("pk", flat=True)
        )
        budget = rate_limit.allowance(account=account, now=now, window_seconds=window_seconds)
        if budget > 0:
            plans.append(_ClaimPlan(account=account, campaign_ids=campaign_ids, budget=budget))
    batches: list[ClaimedBatch] = []
    # Accounts take turns, so a large campaign never starves another account in a tick: one batch each
    # in the first round, so every account's first batch is near the head of the workers' queue, then
    # a claim statement's worth each (ledger.CLAIM_BATCHES_PER_STATEMENT, a fraction of a second of the
    # workers). The fair share keeps an account from
    # starving the others across ticks.
    first_round = True
    while plans:
        for plan in list(plans):
            turn = plan.account.batch_size * (1 if first_round else ledger.CLAIM_BATCHES_PER_STATEMENT)
            wanted = min(plan.budget, turn)
            claimed_batches, plan.after_id = ledger.claim_as_batches(
                campaign_ids=plan.campaign_ids,
                limit=wanted,
                batch_size=plan.account.batch_size,
                now=now,
                after_id=plan.after_id,
                message_id_domain=sender_domain(plan.account.from_email),
            )
            claimed = 0
            for batch_id, count in claimed_batches:
                batches.append((plan.account.pk, batch_id, count))
                claimed += count
                on_claimed(batch_id)
            plan.budget -= claimed
            if claimed < wanted or plan.budget <= 0:
                plans.remove(plan)
        first_round = False
    return batches


@dataclass
class _ClaimPlan:
    account: SmtpAccount
    campaign_ids: list[int]
    budget: int
    after_id: int = 0  # where this account's next claim of the tick starts


def queue_running_dry(*, account_id: int) -> bool:
    """Whether a tick is due now for this account, asked by the worker that finished one of its
    batches: its fair share, not its pacing, bounds what it may hold, and fewer than
    rate_limit.LOW_WATER_BATCHES of its batches are left. Left to beat's next tick, its workers
    would idle until then (up to an interval: a fresh campaign's floor lasts far less). One small read
    a batch: the account's row, and its queued tallies."""
    account = (
        SmtpAccount.objects.filter(pk=account_id)
        .select_related("state")
        .only("max_per_minute", "batch_size", "state__learned_per_minute")
        .first()
    )
    if account is None:
        return False
    low_water = rate_limit.LOW_WATER_BATCHES * account.batch_size
    if rate_limit.queued_count(account_id=account_id) >= low_water:
        return False
    return rate_limit.fair_share_applies(account=account, window_seconds=dispatch_interval_seconds())
