"""Learning an account's real sending limit from its provider's throttling replies.

Providers rarely publish their limits, so marketers set optimistic ones. When a server throttles
(421, 454, a 4.7.x reply, "too much mail"), what it accepted in the minute before the first refusal
is its limit as it counts it: the account drops to just under that (PROVIDER_MARGIN) instead of
halving, which overshot and crawled back (a 600/min Postfix limit averaged 357/min). Refusals that
follow within THROTTLE_EPISODE_SECONDS are the same closed window, not news: they only pause the
account's pacing clock (THROTTLE_PAUSE_SECONDS), so a closed window costs a few deferred emails, not
a burst. After PROBE_AFTER_SECONDS without throttling the rate creeps up by PROBE_STEP, never above
the configured maximum, so a raised limit is found again.

Every write is one conditional UPDATE: no transaction, so none waits for the sender's pipelined
results (see ledger.ResultWriter), and two workers refused at once start one episode, not two.
"""

import logging
import math
from datetime import datetime, timedelta

from django.db.models import Case, F, Q, Value, When
from django.db.models.functions import Coalesce, Greatest

from accounts.models import SmtpAccount
from campaigns.models import Email

log = logging.getLogger(__name__)

PROVIDER_MARGIN = 0.95  # settle this far under what the provider accepted
THROTTLE_EPISODE_SECONDS = 60  # refusals within this of an episode's first are the same episode
THROTTLE_PAUSE_SECONDS = 5  # each refusal holds the account's next message back this long
PROBE_AFTER_SECONDS = 60  # a minute without throttling before trying a little faster
PROBE_STEP = 1.02
MIN_SAMPLE = 5  # fewer accepted than this in the minute: no estimate, halve instead
WINDOW = timedelta(seconds=60)


def effective_per_minute(account) -> float:
    """The rate the account sends at: its maximum, or less when a lower limit was learned."""
    return current_rate(account.max_per_minute, account.learned_per_minute)


def current_rate(max_per_minute, learned_per_minute) -> float:
    if learned_per_minute is None:
        return float(max_per_minute)
    return max(1.0, min(float(max_per_minute), learned_per_minute))


def accepted_in_last_minute(*, account_id: int, now: datetime) -> int:
    # The partial (campaign, sent_at) index of sent rows answers this from one minute's rows.
    return Email.objects.filter(
        campaign__smtp_account_id=account_id, status=Email.Status.SENT, sent_at__gt=now - WINDOW, sent_at__lte=now
    ).count()


def estimate_limit(*, accepted: int, current: float) -> tuple[float, str]:
    """The rate to settle at after a first refusal, and how it was found."""
    if accepted >= MIN_SAMPLE:
        rate = max(1.0, math.floor(min(accepted, current) * PROVIDER_MARGIN))
        return rate, f"the server accepted {accepted} in the minute before refusing"
    return max(1.0, math.floor(current / 2)), f"the server accepted only {accepted} in the minute before refusing"


def on_throttled(*, account_id: int, code: int | None, text: str, now: datetime) -> float | None:
    """A throttling reply. Starts an episode (a learned rate) unless one is running; always pauses
    the account's pacing clock. Returns the new learned rate, or None within an episode."""
    _pause_pacing(account_id=account_id, now=now)
    account = (
        SmtpAccount.objects.filter(pk=account_id)
        .values("max_per_minute", "learned_per_minute", "last_throttled_at").first()
    )
    if account is None or _within_episode(account["last_throttled_at"], now):
        return None
    current = current_rate(account["max_per_minute"], account["learned_per_minute"])
    rate, how = estimate_limit(accepted=accepted_in_last_minute(account_id=account_id, now=now), current=current)
    reply = (text or "").strip()
    if code and not reply.startswith(str(code)):
        reply = f"{code} {reply}".strip()
    reply = reply[:300]
    note = f"Throttled (“{reply}”): {how}; sending at {rate:.0f}/min."
    started = SmtpAccount.objects.filter(pk=account_id, last_throttled_at=account["last_throttled_at"]).update(
        learned_per_minute=rate, rate_note=note, rate_changed_at=now, last_throttled_at=now,
    )
    if not started:
        return None  # another worker's refusal started this episode a moment ago
    log.warning("SMTP account %s throttled by its server (%s); rate %.0f/min -> %.0f/min", account_id, reply,
                current, rate)
    return rate


def _within_episode(last_throttled_at, now):
    return last_throttled_at is not None and now - last_throttled_at < timedelta(seconds=THROTTLE_EPISODE_SECONDS)


def _pause_pacing(*, account_id, now):
    pause_until = now + timedelta(seconds=THROTTLE_PAUSE_SECONDS)
    SmtpAccount.objects.filter(pk=account_id).update(
        next_send_at=Greatest(Coalesce(F("next_send_at"), Value(pause_until)), Value(pause_until))
    )


def after_clean_batch(*, account_id: int, now: datetime) -> bool:
    """A batch sent without throttling: after PROBE_AFTER_SECONDS of that, a little faster (back to
    the configured maximum once the probe reaches it). Returns whether the rate moved."""
    settled = now - timedelta(seconds=PROBE_AFTER_SECONDS)
    faster = F("learned_per_minute") * PROBE_STEP
    return bool(
        SmtpAccount.objects.filter(pk=account_id, learned_per_minute__isnull=False)
        .filter(Q(rate_changed_at__isnull=True) | Q(rate_changed_at__lte=settled))
        .filter(Q(last_throttled_at__isnull=True) | Q(last_throttled_at__lte=settled))
        .update(
            learned_per_minute=Case(When(max_per_minute__lte=faster, then=None), default=faster),
            rate_note=Case(
                When(max_per_minute__lte=faster, then=Value("No throttling since: back at the configured maximum.")),
                default=Value("No throttling for a minute: probing a little faster."),
            ),
            rate_changed_at=now,
        )
    )


def forget_learned_rate(*, account_id: int) -> None:
    """The marketer changed the account's limits: start again from the configured maximum."""
    SmtpAccount.objects.filter(pk=account_id).update(
        learned_per_minute=None, rate_note="", rate_changed_at=None, last_throttled_at=None,
    )

