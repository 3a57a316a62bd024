"""Per-account sending budgets and pacing, shared by every worker on every machine.

Budgets live in the database: what an account may claim is its per-minute,
per-hour and per-day limits less what it sent in those windows and what is
in flight, and never more than its fair share of the workers (about one
dispatch interval of what it sends now; see FAIR_SHARE_HEADROOM). Pacing is
a clock on the account's state row (SmtpAccountState.next_send_at) that each
worker advances by one interval per message under a row lock, so sends are
spread evenly across workers instead of each sleeping a fixed delay.
"""

import math
from datetime import datetime, timedelta

from django.db import connection
from django.db.models import Count, F, Max, Min, Q, Sum

from campaigns.models import CampaignHourTally, CampaignTally, Email
from delivery.selectors import sent_by_account
from sending.models import SmtpAccount, SmtpAccountState
from sending.rates import effective_per_minute

# --- what an account may claim now: its limits, and its fair share of the workers ---------------

# An account may hold claimed-but-unsent rows (queued: batches waiting in the workers' one queue)
# for about one dispatch interval of what it sends now, no more: another marketer's first batch,
# queued behind them, then waits about one interval at most, so a new campaign's first message goes
# out within about an interval of "send now" (measured in BENCHMARKS.md, Fair share). For an account
# with a low limit that is its pacing; for one whose limit is far above what the workers achieve
# ("unlimited"), it is the rate it achieved lately, measured from its sent rows.
#
# HEADROOM: a tick tops the account up to 1.1 intervals of its rate, so when beat's next tick
# comes a tenth of an interval is still queued and the workers go on without a pause
# while it claims. Should they run low all the same (the account sent faster than measured: a fresh
# campaign past its floor, a machine that got faster), the worker that sees fewer than
# LOW_WATER_BATCHES of its batches left asks for a tick at once (dispatcher.queue_running_dry), so
# the headroom need not cover a late or slow tick. More headroom is longer waits for the others, who
# queue behind FAIR_SHARE_HEADROOM intervals of it (measured in BENCHMARKS.md, Fair share).
FAIR_SHARE_HEADROOM = 1.1
# FLOOR: a fresh campaign, whose rate nobody measured yet, starts with ten batches: every worker
# process of a typical deployment takes one at once, and ten batches of someone else's (a fraction of
# a second of the workers: BENCHMARKS.md, Throughput of the full sending path) delay no one. The
# tick that its last batches ask for measures the rate.
FAIR_SHARE_FLOOR_BATCHES = 10
# Fewer queued batches than this (the ones being sent included): the account's workers are about
# to idle, and a tick is due now. Two: the worker processes of a small deployment.
LOW_WATER_BATCHES = 2
# A rate measured over less than a second of sending is noise (two rows a millisecond apart are not
# 2,000 a second): the span is counted as one second at least, so the first measurement of a fresh
# campaign is a floor too, the next ones the real rate.
MIN_MEASURED_SPAN_SECONDS = 1.0


def allowance(*, account: SmtpAccount, now: datetime, window_seconds: float) -> int:
    """How many emails the account may claim now, for the next `window_seconds`: within its
    per-minute, per-hour and per-day limits and pacing, and within its fair share of the workers."""
    in_flight = _in_flight(account)
    wanted = _paced(account, window_seconds)
    if fair_share_applies(account=account, window_seconds=window_seconds):
        wanted = min(wanted, fair_share_cap(account=account, now=now, window_seconds=window_seconds))
    wanted -= in_flight
    if wanted <= 0:
        return 0
    return max(
        0,
        min(
            wanted,
            _left_within_limits(
                account=account, now=now, in_flight=in_flight, wanted=wanted, window_seconds=window_seconds
            ),
        ),
    )


def fair_share_applies(*, account: SmtpAccount, window_seconds: float) -> bool:
    """Whether the fair share can bound the account: its pacing allows more than the floor (an
    account paced below it is bound by its pacing alone)."""
    return _paced(account, window_seconds) > FAIR_SHARE_FLOOR_BATCHES * account.batch_size


def _paced(account: SmtpAccount, window_seconds: float) -> int:
    return math.ceil(effective_per_minute(account) * window_seconds / 60.0)


def fair_share_cap(*, account: SmtpAccount, now: datetime, window_seconds: float) -> int:
    """The most rows the account may hold queued: FAIR_SHARE_HEADROOM intervals of its measured
    rate, the floor at least."""
    rate = measured_rate(account=account, now=now, window_seconds=window_seconds)
    # Rounded before ceil: 1.1 x 1,000 is 1,100.0000000000002 in floating point, not a row more.
    share = math.ceil(round(FAIR_SHARE_HEADROOM * rate * window_seconds, 6))
    return max(FAIR_SHARE_FLOOR_BATCHES * account.batch_size, share)


def measured_rate(*, account: SmtpAccount, now: datetime, window_seconds: float) -> float:
    """Emails a second the account sent in the last window, over the time it was sending (from the
    first to the last of them): a campaign that sent its only ten batches in a fraction of a second
    sends at the rate of that fraction, not at ten batches an interval. Read on the (campaign,
    sent_at) index of sent rows, one interval of them (a fair share's worth: bounded by the cap itself)."""
    sent = sent_by_account(account_id=account.pk, after=now - timedelta(seconds=window_seconds)).aggregate(
        count=Count("campaign_id"), first=Min("sent_at"), last=Max("sent_at")
    )
    if not sent["count"]:
        return 0.0
    span = (sent["last"] - sent["first"]).total_seconds()
    rate: float = sent["count"] / max(span, MIN_MEASURED_SPAN_SECONDS)
    return rate


def _in_flight(account: SmtpAccount) -> int:
    return queued_count(account_id=account.pk)


def queued_count(*, account_id: int) -> int:
    """The account's queued rows (claimed, not yet sent), whatever its campaigns' status: a sum of their
    queued tallies, exact in every transaction (campaigns.tallies). Counting the rows themselves
    read the index of queued rows, which keeps every row sent since the last vacuum: a worker asks
    after each batch (dispatcher.queue_running_dry), and the count grew with the campaign."""
    queued = CampaignTally.objects.filter(campaign__smtp_account_id=account_id, status=Email.Status.QUEUED).aggregate(
        n=Sum("n")
    )["n"]
    return int(queued or 0)


LIMIT_WINDOWS = (("minute", timedelta(minutes=1)), ("hour", timedelta(hours=1)), ("day", timedelta(days=1)))


def _left_within_limits(
    *, account: SmtpAccount, now: datetime, in_flight: int, wanted: int, window_seconds: float
) -> int:
    """What the per-minute, per-hour and per-day limits leave, exact wherever it is below `wanted`.

    Counting a day of sent rows would be most of a tick's work for a busy account, and for most
    accounts no limit is near: the hour tallies (campaigns.tallies, kept by triggers)
    give each window an upper bound of what was sent in it (the whole hours it touches), and only a
    window whose bound leaves less than `wanted` is counted exactly, on the index of sent rows. Such a
    count reads about as many rows as the limit allows: it is the limit that keeps them few.
    """
    limits = {
        "minute": math.floor(effective_per_minute(account)),
        "hour": account.max_per_hour,
        "day": account.max_per_day,
    }
    bounds = _sent_upper_bounds(account=account, now=now)
    # The minute that matters is the one ending when this claim has been sent, `window_seconds` on:
    # what was sent before its start no longer counts. Counting the whole last minute would hold a paced
    # account below its rate (a tick would claim less than a window's worth, and idle).
    spans = dict(LIMIT_WINDOWS, minute=timedelta(seconds=max(0.0, 60.0 - window_seconds)))
    close = [(name, spans[name]) for name, _ in LIMIT_WINDOWS if limits[name] - bounds[name] - in_flight < wanted]
    if not close:
        return wanted
    widest = max(span for _, span in close)
    counts = sent_by_account(account_id=account.pk, after=now - widest).aggregate(
        **{name: Count("campaign_id", filter=Q(sent_at__gt=now - span)) for name, span in close}
    )
    left: int = min(limits[name] - counts[name] - in_flight for name, _ in close)
    return left


def _sent_upper_bounds(*, account: SmtpAccount, now: datetime) -> dict[str, int]:
    """Sent rows of the account in the hours each window touches: at least what the window holds."""
    hour_of = {name: _epoch_hour(now - span) for name, span in LIMIT_WINDOWS}
    sent = F("sent0") + F("sent1") + F("sent2") + F("sent3")
    bounds = CampaignHourTally.objects.filter(campaign__smtp_account=account, hour__gte=hour_of["day"]).aggregate(
        **{f"sent_{name}": Sum(sent, filter=Q(hour__gte=hour_of[name])) for name, _ in LIMIT_WINDOWS}
    )
    return {name: bounds[f"sent_{name}"] or 0 for name, _ in LIMIT_WINDOWS}


def _epoch_hour(moment: datetime) -> int:
    return int(moment.timestamp() // 3600)


# The reservation is one statement: no transaction to open (a batch's results are written without
# waiting for their answers, and a BEGIN would have to wait for them; see ledger.ResultWriter). The
# state row's lock (FOR UPDATE OF s, then the UPDATE's) orders workers; the account row, which the
# admin writes, is only read. The rate is sending.rates.current_rate's, in double precision throughout.
_RESERVE = f"""
    WITH account AS (
        SELECT s.account_id, GREATEST(%s::timestamptz, COALESCE(s.next_send_at, %s::timestamptz)) AS first,
               60.0 / GREATEST(1.0, LEAST(a.max_per_minute, COALESCE(s.learned_per_minute, a.max_per_minute))) AS step
        FROM {SmtpAccountState._meta.db_table} s JOIN {SmtpAccount._meta.db_table} a ON a.id = s.account_id
        WHERE s.account_id = %s FOR UPDATE OF s
    ), reserved AS (
        SELECT account_id, first, step, GREATEST(1, LEAST(%s, FLOOR(1.0 / step)))::integer AS count FROM account
    )
    UPDATE {SmtpAccountState._meta.db_table} s
    SET next_send_at = reserved.first + make_interval(secs => reserved.step * reserved.count)
    FROM reserved WHERE s.account_id = reserved.account_id
    RETURNING reserved.first, reserved.step, reserved.count
"""


def reserve_slots(*, account_id: int, now: datetime, wanted: int) -> tuple[list[datetime], float]:
    """Reserve up to about one second's worth of the account's next send slots.

    Returns (slots, interval_seconds). Reserving a block per round trip instead of
    one slot per message keeps the shared clock's cost small at high rates, while
    slots stay evenly spaced across every worker. Plain SQL: every batch reserves, and
    compiling the ORM's statements costs a worker more than running them (measured in
    BENCHMARKS.md, Costs behind the code).
    """
    with connection.cursor() as cursor:
        cursor.execute(_RESERVE, [now, now, account_id, wanted])
        row = cursor.fetchone()
    if row is None:
        raise SmtpAccount.DoesNotExist(f"SMTP account {account_id} is gone")
    first, interval, count = row
    return [first + timedelta(seconds=interval * i) for i in range(count)], interval


def give_back_slots(*, account_id: int, unused: list[datetime], interval: float) -> None:
    """Unused reservations: pull the clock back if nobody reserved after them."""
    if not unused:
        return
    # "Nobody reserved after them": the clock still where this reservation left it. Compared within a
    # tolerance, not for equality: the clock was computed by the database (first + step * count) and
    # the end here by Python (first + step * i + step), a microsecond apart often enough. An equality
    # would miss those, every missed give-back would leave the clock a second ahead, and after a throttling
    # pause (every batch then finds its slot too far and gives it back) the clock would run ahead of every send.
    end = unused[-1] + timedelta(seconds=interval)
    tolerance = timedelta(seconds=min(0.001, interval / 2))
    SmtpAccountState.objects.filter(
        account_id=account_id, next_send_at__gte=end - tolerance, next_send_at__lte=end + tolerance
    ).update(next_send_at=unused[0])
