"""Per-account sending budgets and pacing, shared by every worker on every machine.

Budgets live in the database: what an account may claim is its per-minute,
per-hour and per-day limits less what it sent in those windows and what is
in flight. Pacing is a clock on the SmtpAccount row (`next_send_at`) that
each worker advances by one interval per message under a row lock, so sends
are spread evenly across workers instead of each sleeping a fixed delay.
"""

import math
from datetime import datetime, timedelta

from django.db import connection, transaction
from django.db.models import Count, Q

from accounts.models import SmtpAccount
from campaigns.delivery import ledger
from campaigns.delivery.adaptive_rate import current_rate, effective_per_minute
from campaigns.models import Email


def allowance(*, account, now: datetime, window_seconds: float) -> int:
    """How many emails the account may claim now, for the next `window_seconds`."""
    # Sent rows by the (campaign, sent_at) index of sent rows; in flight by the index of queued rows.
    # The minute that matters is the one ending when this claim has been sent, `window_seconds` on:
    # what was sent before its start no longer counts. Counting the whole last minute held a paced
    # account to 85 % of its rate (a tick then claimed less than a window's worth, and idled).
    minute_start = now - timedelta(seconds=max(0.0, 60.0 - window_seconds))
    counts = Email.objects.filter(
        campaign__smtp_account=account, status=Email.Status.SENT, sent_at__gte=now - timedelta(days=1)
    ).aggregate(
        minute=Count("campaign_id", filter=Q(sent_at__gt=minute_start)),
        hour=Count("campaign_id", filter=Q(sent_at__gte=now - timedelta(hours=1))),
        day=Count("campaign_id"),
    )
    in_flight = Email.objects.filter(campaign__smtp_account=account, status=Email.Status.QUEUED).count()
    paced = math.ceil(effective_per_minute(account) * window_seconds / 60.0)
    return max(
        0,
        min(
            paced - in_flight,
            math.floor(effective_per_minute(account)) - counts["minute"] - in_flight,
            account.max_per_hour - counts["hour"] - in_flight,
            account.max_per_day - counts["day"] - in_flight,
        ),
    )


def reserve_slots(*, account_id: int, now: datetime, wanted: int) -> tuple[list[datetime], float]:
    """Reserve up to about one second's worth of the account's next send slots.

    Returns (slots, interval_seconds). Reserving a block per round trip instead of
    one slot per message keeps the shared clock's cost small at high rates, while
    slots stay evenly spaced across every worker. Plain SQL: every batch reserves, and
    compiling the ORM's statements cost a worker more than running them.
    """
    if connection.vendor == "postgresql":
        return _reserve_slots_in_one_statement(account_id=account_id, now=now, wanted=wanted)
    table = SmtpAccount._meta.db_table
    with transaction.atomic(), connection.cursor() as cursor:  # SQLite: one writer at a time anyway
        cursor.execute(f"SELECT max_per_minute, learned_per_minute, next_send_at FROM {table} WHERE id = %s",
                       [account_id])
        row = cursor.fetchone()
        if row is None:
            raise SmtpAccount.DoesNotExist(f"SMTP account {account_id} is gone")
        max_per_minute, learned_per_minute, next_send_at = row
        first = max(now, ledger.read_datetime(next_send_at) or now)
        interval = 60.0 / current_rate(max_per_minute, learned_per_minute)
        count = max(1, min(wanted, math.floor(1.0 / interval)))
        slots = [first + timedelta(seconds=interval * i) for i in range(count)]
        cursor.execute(f"UPDATE {table} SET next_send_at = %s WHERE id = %s",
                       [ledger.db_value(first + timedelta(seconds=interval * count)), account_id])
    return slots, interval


# The same reservation as one statement: no transaction to open (a batch's results are written
# without waiting for their answers, and a BEGIN would have to wait for them; see ledger.ResultWriter).
# The row lock of the UPDATE orders workers as SELECT ... FOR UPDATE did. Its arithmetic is Python's:
# double precision throughout, floor() alike.
_RESERVE = f"""
    WITH account AS (
        SELECT id, GREATEST(%s::timestamptz, COALESCE(next_send_at, %s::timestamptz)) AS first,
               60.0 / GREATEST(1.0, LEAST(max_per_minute, COALESCE(learned_per_minute, max_per_minute))) AS step
        FROM {SmtpAccount._meta.db_table} WHERE id = %s FOR UPDATE
    ), reserved AS (
        SELECT id, first, step, GREATEST(1, LEAST(%s, FLOOR(1.0 / step)))::integer AS count FROM account
    )
    UPDATE {SmtpAccount._meta.db_table} a
    SET next_send_at = reserved.first + make_interval(secs => reserved.step * reserved.count)
    FROM reserved WHERE a.id = reserved.id
    RETURNING reserved.first, reserved.step, reserved.count
"""


def _reserve_slots_in_one_statement(*, account_id, now, wanted):
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
    SmtpAccount.objects.filter(pk=account_id, next_send_at=unused[-1] + timedelta(seconds=interval)).update(
        next_send_at=unused[0]
    )
