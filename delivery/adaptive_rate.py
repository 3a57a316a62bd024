"""Learning an account's real sending limit from its provider's throttling replies.

Providers rarely publish their limits, so marketers set optimistic ones. When a server throttles
(421, 454, a 4.7.x reply, "too much mail"), what it accepted in the minute before the first refusal
is its limit as it counts it: the account drops to just under that (PROVIDER_MARGIN) instead of
halving, which overshoots downwards and crawls back, sending well under the limit meanwhile, and its pacing
clock waits until its last minute holds fewer than the new rate (resume_at): by then a server
counting per minute has reopened, so a closed window costs one deferred email, not a burst. Refusals
within THROTTLE_EPISODE_SECONDS of the first are that same closed window, not news: they only pause.
After PROBE_AFTER_SECONDS without throttling the rate creeps up by PROBE_STEP, under the limit the
server was seen to accept (see probe_rate), never above the configured maximum.

Every write is one conditional UPDATE: no transaction, so none waits for the sender's pipelined
results (see ledger.ResultWriter), and two workers refused at once start one episode, not two.
"""

import logging
import math
from datetime import datetime, timedelta

from django.db.models import F, Value
from django.db.models.functions import Coalesce, Greatest

from delivery.selectors import sent_by_account
from sending.models import SmtpAccountState
from sending.rates import current_rate

log = logging.getLogger(__name__)

PROVIDER_MARGIN = 0.95  # settle this far under what the provider accepted
THROTTLE_EPISODE_SECONDS = 60  # refusals within this of an episode's first are the same episode
THROTTLE_PAUSE_SECONDS = 5  # each refusal holds the account's next message back this long
PROBE_AFTER_SECONDS = 60  # a minute without throttling before trying a little faster
PROBE_STEP = 1.02
PROBE_PAST_LIMIT_SECONDS = 30 * 60  # this long without a refusal before probing past the observed limit
MIN_SAMPLE = 5  # fewer accepted than this in the minute: no estimate, halve instead
WINDOW = timedelta(seconds=60)


def accepted_in_last_minute(*, account_id: int, now: datetime) -> int:
    return sent_by_account(account_id=account_id, after=now - WINDOW, until=now).count()


def estimate_limit(*, accepted: int, current: float) -> tuple[float, str]:
    """The rate to settle at after a first refusal, and how it was found."""
    if accepted >= MIN_SAMPLE:
        rate = max(1.0, math.floor(min(accepted, current) * PROVIDER_MARGIN))
        return rate, f"the server accepted {accepted} in the minute before refusing"
    return max(1.0, math.floor(current / 2)), f"the server accepted only {accepted} in the minute before refusing"


def on_throttled(*, account_id: int, code: int | None, text: str, now: datetime) -> float | None:
    """A throttling reply. Starts an episode (a learned rate) unless one is running; always pauses
    the account's pacing clock (see resume_at). Returns the new learned rate, or None within an episode."""
    account = (
        SmtpAccountState.objects.filter(account_id=account_id)
        .values("account__max_per_minute", "learned_per_minute", "last_throttled_at")
        .first()
    )
    if account is None:
        return None
    current = current_rate(account["account__max_per_minute"], account["learned_per_minute"])
    if _within_episode(account["last_throttled_at"], now):
        _pause_pacing(account_id=account_id, until=resume_at(account_id=account_id, now=now, rate=current))
        return None
    accepted = accepted_in_last_minute(account_id=account_id, now=now)
    rate, how = estimate_limit(accepted=accepted, current=current)
    observed = accepted if accepted >= MIN_SAMPLE else None
    _pause_pacing(account_id=account_id, until=resume_at(account_id=account_id, now=now, rate=rate))
    reply = (text or "").strip()
    if code and not reply.startswith(str(code)):
        reply = f"{code} {reply}".strip()
    reply = reply[:300]
    note = f"Throttled (“{reply}”): {how}; sending at {rate:.0f}/min."
    started = SmtpAccountState.objects.filter(
        account_id=account_id, last_throttled_at=account["last_throttled_at"]
    ).update(
        learned_per_minute=rate,
        observed_limit_per_minute=observed,
        rate_note=note,
        rate_changed_at=now,
        last_throttled_at=now,
    )
    if not started:
        return None  # another worker's refusal started this episode a moment ago
    log.warning(
        "SMTP account %s throttled by its server (%s); rate %.0f/min -> %.0f/min", account_id, reply, current, rate
    )
    return rate


def _within_episode(last_throttled_at: datetime | None, now: datetime) -> bool:
    return last_throttled_at is not None and now - last_throttled_at < timedelta(seconds=THROTTLE_EPISODE_SECONDS)


def resume_at(*, account_id: int, now: datetime, rate: float) -> datetime:
    """When the account may send again after a refusal: once what it sent in the last minute has
    fallen under `rate` (so no minute of its sending ever exceeds the rate it learned: a server
    counting per minute has reopened by then), and at least THROTTLE_PAUSE_SECONDS on."""
    pause = now + timedelta(seconds=THROTTLE_PAUSE_SECONDS)
    over = accepted_in_last_minute(account_id=account_id, now=now) - math.floor(rate)
    if over < 0:
        return pause
    # The over+1-th oldest of the minute: once it is a minute old, fewer than `rate` remain in it.
    oldest = (
        sent_by_account(account_id=account_id, after=now - WINDOW, until=now)
        .order_by("sent_at")
        .values_list("sent_at", flat=True)[over : over + 1]
    )
    # Sent rows all have a sent_at (the filter is on it); the check narrows its type.
    return max([pause, *(at + WINDOW for at in oldest if at is not None)])


def _pause_pacing(*, account_id: int, until: datetime) -> None:
    SmtpAccountState.objects.filter(account_id=account_id).update(
        next_send_at=Greatest(Coalesce(F("next_send_at"), Value(until)), Value(until))
    )


def after_clean_batch(*, account_id: int, now: datetime) -> bool:
    """A batch sent without throttling: after PROBE_AFTER_SECONDS of that, a little faster (back to
    the configured maximum once the probe reaches it). Returns whether the rate moved."""
    account = (
        SmtpAccountState.objects.filter(account_id=account_id, learned_per_minute__isnull=False)
        .values(
            "account__max_per_minute",
            "learned_per_minute",
            "observed_limit_per_minute",
            "rate_changed_at",
            "last_throttled_at",
        )
        .first()
    )
    # learned_per_minute is never None here (the filter); the check narrows its type.
    if account is None or account["learned_per_minute"] is None:
        return False
    if not _settled(
        rate_changed_at=account["rate_changed_at"], last_throttled_at=account["last_throttled_at"], now=now
    ):
        return False
    rate = probe_rate(
        learned=account["learned_per_minute"],
        observed=account["observed_limit_per_minute"],
        clean_seconds=(now - account["last_throttled_at"]).total_seconds() if account["last_throttled_at"] else None,
    )
    if rate is None:
        return False
    at_maximum = rate >= account["account__max_per_minute"]
    # Conditional on the values read: of two batches ending at once, one probes.
    return bool(
        SmtpAccountState.objects.filter(
            account_id=account_id,
            learned_per_minute=account["learned_per_minute"],
            rate_changed_at=account["rate_changed_at"],
        ).update(
            learned_per_minute=None if at_maximum else rate,
            rate_note="No throttling since: back at the configured maximum."
            if at_maximum
            else f"No throttling for a minute: probing a little faster, {rate:.0f}/min.",
            rate_changed_at=now,
        )
    )


def _settled(*, rate_changed_at: datetime | None, last_throttled_at: datetime | None, now: datetime) -> bool:
    settled = now - timedelta(seconds=PROBE_AFTER_SECONDS)
    return all(at is None or at <= settled for at in (rate_changed_at, last_throttled_at))


def probe_rate(*, learned: float, observed: int | None, clean_seconds: float | None) -> float | None:
    """The next rate up from `learned`, or None to stay. It stays under what the server was seen to
    accept (`observed`) until PROBE_PAST_LIMIT_SECONDS went by without a refusal: a server counting in
    fixed windows lets a little more through, and no minute should exceed its limit for it. After that
    long, its limit may have been raised, and the probe goes on past it, gently."""
    faster = learned * PROBE_STEP
    if observed is not None and (clean_seconds is None or clean_seconds < PROBE_PAST_LIMIT_SECONDS):
        faster = min(faster, observed - 1)
    return faster if faster > learned else None
