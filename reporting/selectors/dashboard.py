"""What the dashboard (the admin index) shows, in a fixed number of queries.

Every figure is scoped to the user through `scope_to_user` (a superuser sees every
marketer). The number of statements does not depend on how many campaigns or emails
there are. Counts come from the tallies the database triggers keep exact in the same
transaction as every Email write (campaigns.tallies), never from counting Email rows:
per (campaign, status) and per (campaign, UTC hour in quarters) for the 7-day timeline.
Only the latest failures read Email rows, newest first from an index.
"""

import math
import zoneinfo
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, time, timedelta, tzinfo

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Count, F, Q, Sum
from django.utils import formats, timezone

from accounts.owned_admin import scope_to_user
from campaigns.models import Campaign, CampaignEvent, CampaignHourTally, CampaignTally, DispatcherState, Email
from campaigns.tallies import HOUR_FIGURES, HOUR_METRICS
from sending.models import SmtpAccount
from sending.rates import current_rate
from tracking.models import Event

S = Email.Status
C = Campaign.Status
UNSENT_STATUSES = (S.PENDING, S.QUEUED, S.DEFERRED)
TIMELINE_DAYS = 7
TOP_CAMPAIGNS = 5
ACTIVITY_ITEMS = 20


def user_zone(user):
    try:
        return zoneinfo.ZoneInfo(user.timezone or settings.DEFAULT_USER_TIMEZONE)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return zoneinfo.ZoneInfo(settings.DEFAULT_USER_TIMEZONE)


def start_of_day(*, now, tz, days_back=0):
    local = now.astimezone(tz).date() - timedelta(days=days_back)
    return datetime.combine(local, time.min, tzinfo=tz)


def rate(part, whole):
    return round(100.0 * part / whole, 1) if whole else 0.0


# Each status on its own (the cards, top campaigns, the superuser's emails per status) and the unsent together.
COUNTED_STATUSES = {**{status: (status,) for status in S.values}, "unsent": UNSENT_STATUSES}


def _in_campaigns(campaign_ids):
    """A SQL condition on campaign_id and its parameters (no condition for None: every campaign)."""
    if campaign_ids is None:
        return "", []
    return f" AND campaign_id IN ({', '.join(['%s'] * len(campaign_ids))})", list(campaign_ids)


def campaign_counts(*, campaign_ids=None):
    """Per campaign: emails per status, reader opens, machine-only opens, from the tallies (one row
    per campaign comes back). campaign_ids None: every campaign (a superuser).

    Plain SQL: built by the ORM, these six conditional sums cost more Python than the query takes.
    """
    if campaign_ids == []:
        return {}
    scope, params = _in_campaigns(campaign_ids)
    # (A sum of bigints is a numeric in PostgreSQL: cast back to an integer.)
    sums = ", ".join(
        f"CAST(SUM({expr}) AS BIGINT)"
        for expr in [
            f"CASE WHEN status IN ({', '.join(repr(str(s)) for s in statuses)}) THEN n ELSE 0 END"
            for statuses in COUNTED_STATUSES.values()
        ]
        + ["opened", "machine_only"]
    )
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT campaign_id, {sums} FROM {CampaignTally._meta.db_table} WHERE 1 = 1{scope} GROUP BY campaign_id",
            params,
        )
        keys = (*COUNTED_STATUSES, "opened", "machine_only")
        return {row[0]: dict(zip(keys, row[1:])) for row in cursor.fetchall()}


def hour_and_quarter(moment):
    """The UTC hour (since the epoch) and quarter hour (0-3) of a moment, as the tallies key them."""
    seconds = math.floor(moment.timestamp())
    return seconds // 3600, seconds % 3600 // 900


def week_figures(*, campaign_ids, midnights):
    """Sent (and opened of those) per (day, campaign), reader opens per day, failures of the last day.

    From CampaignHourTally, in one statement whatever the number of campaigns, reading each of the
    week's hour rows once. Each row is one UTC hour in quarters; the viewer's midnights fall on
    quarter hours, so an hour belongs to one local day, except an hour holding a midnight (not on
    the hour, as at +05:30), whose quarters from the midnight on are moved to the next day. Days are
    indexes into `midnights`; the last day runs on.
    """
    if campaign_ids == []:
        return [], [{"day": m.date(), "opened": 0} for m in midnights], 0
    scope, params = _in_campaigns(campaign_ids)
    with connection.cursor() as cursor:
        cursor.execute(week_statement(WeekHours.of(midnights), scope=scope), params)
        rows = [WeekRow(*row) for row in cursor.fetchall()]
    return sent_per_day(rows, midnights), opens_per_day(rows, midnights), failed_on_last_day(rows, midnights)


@dataclass(frozen=True)
class WeekHours:
    """The viewer's midnights as the hour tallies key them.

    Day i starts with hour `starts[i]`, the first hour whose quarter 0 is on or after midnight i; an
    hour holding a midnight (`split`) gives its quarters from that midnight on to the next day.
    """

    starts: list[int]
    split: dict[int, int]  # hour -> its first quarter moved to the next day (1-3)
    first_hour: int

    @classmethod
    def of(cls, midnights):
        bounds = [hour_and_quarter(m) for m in midnights]
        return cls(
            starts=[hour + (1 if quarter else 0) for hour, quarter in bounds],
            split={hour: quarter for hour, quarter in bounds if quarter},
            first_hour=bounds[0][0],
        )

    @property
    def days(self):
        return len(self.starts)

    @property
    def same_every_day(self):
        """No clock change this week: every day is 24 hours and every split hour splits at the same quarter."""
        whole_days = all(later - earlier == 24 for earlier, later in zip(self.starts, self.starts[1:]))
        return whole_days and len(set(self.split.values())) <= 1


@dataclass(frozen=True)
class DayColumns:
    """How the hour rows become days, as SQL: `day` and `moved_from` place a tally row (its day index,
    its first quarter moved to the next day or 0); `sums` are what the rows of a group add up to (by
    alias); `kept[metric]` is a group's figure for its own day and `moved[metric]` the part moved to
    the next day (None: no hour this week holds a midnight)."""

    day: str
    moved_from: str
    sums: dict[str, str]
    kept: dict[str, str]
    moved: dict[str, str] | None


def quarter_sum(metric, wanted):
    return " + ".join(f"{metric}{q}" for q in wanted)


def day_columns(week):
    return day_columns_by_arithmetic(week) if week.same_every_day else day_columns_by_comparison(week)


def day_columns_by_arithmetic(week):
    """The day by arithmetic, cheaper per row than comparing with every midnight; every split hour
    splits at the same quarter, so per metric its total and the part before the midnight are all
    the sums needed."""
    starts = week.starts
    day = f"CASE WHEN hour >= {starts[-1]} THEN {week.days - 1} ELSE (hour - {starts[0] - 24}) / 24 - 1 END"
    totals = {f"t_{m}": quarter_sum(m, range(4)) for m in HOUR_METRICS}
    if not week.split:
        return DayColumns(day=day, moved_from="0", sums=totals, kept={m: f"t_{m}" for m in HOUR_METRICS}, moved=None)
    at = next(iter(week.split.values()))
    return DayColumns(
        day=day,
        moved_from=f"CASE WHEN hour < {starts[-1]} AND (hour - {week.first_hour}) %% 24 = 0 THEN {at} ELSE 0 END",
        sums={**totals, **{f"h_{m}": quarter_sum(m, range(at)) for m in HOUR_METRICS}},
        kept={m: f"CASE WHEN moved_from = 0 THEN t_{m} ELSE h_{m} END" for m in HOUR_METRICS},
        moved={m: f"t_{m} - h_{m}" for m in HOUR_METRICS},
    )


def day_columns_by_comparison(week):
    """A clock change this week: the day by comparing with each day's first hour, and what a split
    hour keeps chosen by its own first quarter moved (the split hours may differ)."""
    day = (
        "CASE "
        + " ".join(f"WHEN hour >= {start} THEN {i}" for i, start in reversed(list(enumerate(week.starts))))
        + " ELSE -1 END"
    )
    kept = {
        m: f"CASE moved_from WHEN 0 THEN {quarter_sum(m, range(4))} "
        + " ".join(f"WHEN {q} THEN {quarter_sum(m, range(q))}" for q in (1, 2, 3))
        + " END"
        for m in HOUR_METRICS
    }
    sums = {f: f for f in HOUR_FIGURES}
    if not week.split:
        return DayColumns(day=day, moved_from="0", sums=sums, kept=kept, moved=None)
    return DayColumns(
        day=day,
        moved_from="CASE hour " + " ".join(f"WHEN {hour} THEN {q}" for hour, q in week.split.items()) + " ELSE 0 END",
        sums=sums,
        kept=kept,
        moved={m: f"{quarter_sum(m, range(4))} - ({kept[m]})" for m in HOUR_METRICS},
    )


def week_statement(week, *, scope):
    """One statement: per (campaign, day) of the week, the HOUR_METRICS' sums."""
    columns = day_columns(week)
    # The hour rows are many: plain sums per (campaign, day, first quarter moved), the cheapest per
    # row; then the few groups of split hours give their later quarters to the next day.
    days = f"SELECT campaign_id, day, {', '.join(f'{columns.kept[m]} AS {m}' for m in HOUR_METRICS)} FROM hours"
    if columns.moved:
        days += (
            f" UNION ALL SELECT campaign_id, day + 1, {', '.join(columns.moved[m] for m in HOUR_METRICS)} "
            f"FROM hours WHERE moved_from > 0"
        )
    sums = ", ".join(f"SUM({x}) AS {a}" for a, x in columns.sums.items())
    return (
        f"WITH hours AS (SELECT campaign_id, day, moved_from, {sums} "
        f"FROM (SELECT campaign_id, {columns.day} AS day, {columns.moved_from} AS moved_from, "
        f"{', '.join(HOUR_FIGURES)} "
        f"FROM {CampaignHourTally._meta.db_table} WHERE hour >= {week.first_hour}{scope}) AS rows "
        f"GROUP BY campaign_id, day, moved_from) "
        f"SELECT campaign_id, day, {', '.join(f'CAST(SUM({m}) AS BIGINT)' for m in HOUR_METRICS)} "
        f"FROM ({days}) AS days "
        f"WHERE day BETWEEN 0 AND {week.days - 1} GROUP BY campaign_id, day"
    )


@dataclass(frozen=True, order=True)
class WeekRow:
    """A row of week_statement: one campaign's figures of one day (an index into the midnights)."""

    campaign_id: int
    day: int
    sent: int
    sent_opened: int
    opened: int
    failed: int


def sent_per_day(rows, midnights):
    return [
        {"day": midnights[row.day].date(), "campaign_id": row.campaign_id, "sent": row.sent, "opened": row.sent_opened}
        for row in sorted(rows)
        if row.sent
    ]


def opens_per_day(rows, midnights):
    opened = [0] * len(midnights)
    for row in rows:
        opened[row.day] += row.opened
    return [{"day": midnight.date(), "opened": n} for midnight, n in zip(midnights, opened)]


def failed_on_last_day(rows, midnights):
    last = len(midnights) - 1
    return sum(row.failed for row in rows if row.day == last)


@contextmanager
def one_snapshot():
    """A transaction whose every read sees the same committed state, so the cards (from the status tallies)
    and the chart (from the hour tallies) never differ by an email committed between their reads. PostgreSQL
    reads committed per statement by default: REPEATABLE READ, set as the transaction's first statement.
    Inside an open transaction, that one's isolation holds."""
    outermost = not connection.in_atomic_block
    with transaction.atomic():
        if outermost:
            with connection.cursor() as cursor:
                cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        yield


def dashboard(*, user, now=None):
    with one_snapshot():
        return _dashboard(user=user, now=now)


def _dashboard(*, user, now=None):
    now = now or timezone.now()
    tz = user_zone(user)
    campaigns = user_campaigns(user)
    # The user's campaign ids as a literal list (None: a superuser's every campaign), so each
    # statement reads those campaigns' rows from its index rather than joining on the owner.
    campaign_ids = None if user.is_superuser else [c["id"] for c in campaigns]
    counts = campaign_counts(campaign_ids=campaign_ids)
    midnights = week_midnights(now=now, tz=tz)
    sent_by_day, opened_by_day, failed_today = week_figures(campaign_ids=campaign_ids, midnights=midnights)
    accounts = user_smtp_accounts(user)
    recipient_events = latest_recipient_events(campaign_ids=campaign_ids)
    late_reports = late_report_totals(campaign_ids=campaign_ids)
    status_changes = latest_status_changes(campaign_ids=campaign_ids)
    failures = latest_failures(campaign_ids=campaign_ids)

    names = {c["id"]: c["name"] for c in campaigns}
    today = day_totals(
        day=now.astimezone(tz).date(), sent_by_day=sent_by_day, opened_by_day=opened_by_day, failed=failed_today
    )
    result = {
        "generated_at": now.isoformat(),
        "generated_display": local_text(now, tz, seconds=True),
        "timezone": str(tz),
        "cards": cards(totals=all_time_totals(counts) | late_reports, today=today),
        "top_campaigns": top_campaigns(campaigns=campaigns, counts=counts),
        "timeline": timeline(
            sent_by_day=sent_by_day, opened_by_day=opened_by_day, names=names, week_start=midnights[0], tz=tz
        ),
        "activity": activity(
            status_changes=status_changes,
            accounts=accounts,
            recipient_events=recipient_events,
            failures=failures,
            names=names,
            now=now,
            tz=tz,
        ),
        "sending": sending_campaigns(campaigns),
        "paused_accounts": paused_accounts(accounts=accounts, now=now, tz=tz),
    }
    if user.is_superuser:
        # Every campaign's tallies: their sum is every email.
        result["system"] = system_health(per_status=emails_per_status(counts), tz=tz)
    return result


def user_campaigns(user):
    return list(scope_to_user(Campaign.objects.all(), user).values("id", "name", "status", "owner__username"))


def week_midnights(*, now, tz):
    """The user's local midnights of the last TIMELINE_DAYS days (DST-safe: each computed in the zone)."""
    return [start_of_day(now=now, tz=tz, days_back=TIMELINE_DAYS - 1 - i) for i in range(TIMELINE_DAYS)]


def user_smtp_accounts(user):
    return list(
        scope_to_user(SmtpAccount.objects.all(), user).values(
            "id",
            "name",
            "max_per_minute",
            "updated_at",
            # The engine's state, from the account's state row (one join).
            paused_until=F("state__paused_until"),
            pause_reason=F("state__pause_reason"),
            paused_at=F("state__paused_at"),
            learned_per_minute=F("state__learned_per_minute"),
            rate_note=F("state__rate_note"),
            rate_changed_at=F("state__rate_changed_at"),
            unreachable_since=F("state__unreachable_since"),
            backoff_until=F("state__backoff_until"),
            last_connection_error=F("state__last_connection_error"),
        )
    )


def rows_of_campaigns(model, campaign_ids):
    """The model's rows of those campaigns (campaign_ids None: of every campaign)."""
    if campaign_ids is None:
        return model.objects.all()
    return model.objects.filter(campaign_id__in=campaign_ids)


# A recipient's own events in the feed: unsubscribes, and the bounces and complaints delivery reports
# brought after the 250 (bounces.services).
FEED_EVENT_KINDS = (Event.Kind.UNSUBSCRIBE, Event.Kind.BOUNCE, Event.Kind.COMPLAINT)


def latest_recipient_events(*, campaign_ids):
    return list(
        rows_of_campaigns(Event, campaign_ids)
        .filter(kind__in=FEED_EVENT_KINDS)
        .order_by("-at")
        .values("at", "campaign_id", "kind", "email__to_email", "email__bounce_kind", "email__bounce_status")[
            :ACTIVITY_ITEMS
        ]
    )


def late_report_totals(*, campaign_ids):
    """Later bounces and complaints of those campaigns (None: every campaign), from the few Email rows a
    delivery report was recorded on (the partial index email_late_report), in one statement."""
    late = Q(bounced_at__isnull=False) | Q(complained_at__isnull=False)
    return (
        rows_of_campaigns(Email, campaign_ids)
        .filter(late)
        .aggregate(
            bounced_later=Count("id", filter=Q(bounced_at__isnull=False)),
            complained=Count("id", filter=Q(complained_at__isnull=False)),
        )
    )


def latest_status_changes(*, campaign_ids):
    return list(
        rows_of_campaigns(CampaignEvent, campaign_ids)
        .filter(FEED_TRANSITIONS)
        .order_by("-at", "-id")
        .values("at", "campaign_id", "from_status", "to_status", "reason", "acting_user__username")[:ACTIVITY_ITEMS]
    )


def latest_failures(*, campaign_ids):
    return list(
        rows_of_campaigns(Email, campaign_ids)
        .filter(status=S.FAILED)
        .order_by("-updated_at")
        .values("updated_at", "campaign_id", "to_email", "failure_class", "smtp_code", "smtp_response")[:ACTIVITY_ITEMS]
    )


# The cards' all-time figures, each a sum over the campaigns' tallies (campaign_counts).
CARD_FIGURES = ("sent", "failed", "unsent", "queued", "deferred", "opened")


def all_time_totals(counts):
    return {figure: sum(row[figure] for row in counts.values()) for figure in CARD_FIGURES}


def day_totals(*, day, sent_by_day, opened_by_day, failed):
    """The cards' figures of one day of the week: `failed` is that day's, as week_figures gives it."""
    return {
        "sent": sum(row["sent"] for row in sent_by_day if row["day"] == day),
        "opened": sum(row["opened"] for row in opened_by_day if row["day"] == day),
        "failed": failed,
    }


def cards(*, totals, today):
    return {
        "sent": {"total": totals["sent"], "today": today["sent"]},
        "failed": {
            "total": totals["failed"],
            "today": today["failed"],
            "bounced_later": totals["bounced_later"],
            "complained": totals["complained"],
        },
        # Pending has no "today": it is what waits now; shown with what is in flight and retrying.
        "pending": {"total": totals["unsent"], "queued": totals["queued"], "deferred": totals["deferred"]},
        "opened": {"total": totals["opened"], "today": today["opened"]},
        "open_rate": rate(totals["opened"], totals["sent"]),
        "open_rate_today": rate(today["opened"], today["sent"]),
    }


def sending_campaigns(campaigns):
    return [{"id": c["id"], "name": c["name"]} for c in campaigns if c["status"] == C.SENDING]


def emails_per_status(counts):
    return {status: sum(c[status] for c in counts.values()) for status in S.values}


def top_campaigns(*, campaigns, counts):
    rows = []
    for c in campaigns:
        row = counts.get(c["id"])
        if not row or not row["sent"]:
            continue
        rows.append(
            {
                "id": c["id"],
                "name": c["name"],
                "owner": c["owner__username"],
                "status": c["status"],
                "sent": row["sent"],
                "opened": row["opened"],
                "open_rate": rate(row["opened"], row["sent"]),
                "machine_opens": row["machine_only"],
            }
        )
    rows.sort(key=lambda r: (-r["open_rate"], -r["sent"], r["id"]))
    return rows[:TOP_CAMPAIGNS]


def timeline(*, sent_by_day, opened_by_day, names, week_start, tz):
    first = week_start.date()
    days = {first + timedelta(days=i): {"sent": 0, "opened": 0, "campaigns": []} for i in range(TIMELINE_DAYS)}
    for row in sent_by_day:
        day = days.get(row["day"])
        if day is None:
            continue
        day["sent"] += row["sent"]
        day["campaigns"].append(
            {
                "id": row["campaign_id"],
                "name": names.get(row["campaign_id"], "?"),
                "sent": row["sent"],
                "open_rate": rate(row["opened"], row["sent"]),
            }
        )
    for row in opened_by_day:
        if row["day"] in days:
            days[row["day"]]["opened"] = row["opened"]
    return [
        {
            "date": day.isoformat(),
            "label": day.strftime("%a %d %b"),
            **figures,
            "campaigns": sorted(figures["campaigns"], key=lambda c: -c["sent"]),
        }
        for day, figures in sorted(days.items())
    ]


def paused_accounts(*, accounts: list[dict], now: datetime, tz: tzinfo) -> list[dict]:
    """The banner's accounts that cannot send now: paused (kind "paused") or whose server could not
    be reached (kind "unreachable", resting until the next try; see sending.services.back_off_account)."""
    items = [
        {
            "kind": "paused",
            "name": a["name"],
            "reason": a["pause_reason"],
            "until": a["paused_until"].isoformat(),
            "until_display": local_text(a["paused_until"], tz),
        }
        for a in accounts
        if a["paused_until"] and a["paused_until"] > now
    ]
    for a in accounts:
        if a["unreachable_since"] is None:
            continue
        # A rest already over: the next tick tries again.
        next_try = max(a["backoff_until"] or now, now)
        items.append(
            {
                "kind": "unreachable",
                "name": a["name"],
                "reason": a["last_connection_error"],
                "since": a["unreachable_since"].isoformat(),
                "since_display": local_text(a["unreachable_since"], tz),
                "next_try": next_try.isoformat(),
                "next_try_display": local_text(next_try, tz),
            }
        )
    return items


# The admin's DATETIME_FORMAT ("N j, Y, P") with the seconds, for what changes every few seconds.
DATETIME_WITH_SECONDS = "N j, Y, g:i:s a"


def local_text(moment, tz, *, seconds=False):
    """A moment as the admin shows one: in the user's zone, in its DATETIME_FORMAT ("" for None). The pages'
    scripts show this text rather than format a time in the browser's zone."""
    if not moment:
        return ""
    return formats.date_format(moment.astimezone(tz), DATETIME_WITH_SECONDS if seconds else "DATETIME_FORMAT")


FAILURE_WORDS = {
    Email.FailureClass.BOUNCED: "bounced",
    Email.FailureClass.THROTTLED: "throttled out",
    Email.FailureClass.REJECTED: "rejected",
    Email.FailureClass.ACCOUNT: "failed (account problem)",
    Email.FailureClass.ERROR: "failed with an error",
}


# The campaign changes the feed shows: started, paused, resumed (or sending again), completed,
# cancelled; scheduling and going back to draft are left out.
FEED_TRANSITIONS = Q(to_status__in=[C.SENDING, C.PAUSED, C.COMPLETED, C.CANCELLED]) | Q(from_status=C.PAUSED)


def status_change_item(change, names):
    """(kind, text) of a CampaignEvent in the feed."""
    before, after, reason = change["from_status"], change["to_status"], change["reason"]
    if after == C.SENDING and before == C.SCHEDULED:
        kind, text = "started", "started sending"
    elif before == C.PAUSED:
        kind, text = "resumed", "resumed"
    elif after == C.SENDING:
        kind, text = "resumed", "sending again"  # a completed campaign retried or extended
    else:
        kind, text = str(after), {C.PAUSED: "paused", C.COMPLETED: "completed", C.CANCELLED: "cancelled"}[after]
    who = change["acting_user__username"]
    if who:
        text += f" by {who}"
    if reason and kind in ("paused", "cancelled", "resumed"):
        text += f": {reason}"
    return kind, f"Campaign “{names.get(change['campaign_id'], '?')}” {text}"


@dataclass(frozen=True)
class FeedItem:
    """One line of the activity feed."""

    at: datetime
    kind: str
    text: str
    campaign_id: int | None = None

    def as_dict(self, tz):
        return {
            "at": self.at.isoformat(),
            "at_display": local_text(self.at, tz),
            "kind": self.kind,
            "text": self.text,
            "campaign_id": self.campaign_id,
        }


def activity(*, status_changes, accounts, recipient_events, failures, names, now, tz):
    """The newest ACTIVITY_ITEMS of the feed; items at the same moment keep the order of the arguments."""
    items = [
        *(status_change_feed_item(change, names) for change in status_changes),
        *account_feed_items(accounts, now=now, tz=tz),
        *(recipient_feed_item(e, names) for e in recipient_events),
        *(failure_feed_item(f, names) for f in failures),
    ]
    items.sort(key=lambda item: item.at, reverse=True)
    return [item.as_dict(tz) for item in items[:ACTIVITY_ITEMS]]


def status_change_feed_item(change, names):
    kind, text = status_change_item(change, names)
    return FeedItem(change["at"], kind, text, change["campaign_id"])


def account_feed_items(accounts, *, now, tz):
    items = []
    for a in accounts:
        if a["paused_until"] and a["paused_until"] > now:
            items.append(paused_account_feed_item(a, tz))
        if a["learned_per_minute"] is not None:
            items.append(learned_rate_feed_item(a))
    return items


def paused_account_feed_item(account, tz):
    return FeedItem(
        account["paused_at"] or account["updated_at"],
        "paused",
        f"SMTP account “{account['name']}” paused by the system until "
        f"{local_text(account['paused_until'], tz)}: {account['pause_reason'] or 'no reason given'}",
    )


def learned_rate_feed_item(account):
    per_minute = current_rate(account["max_per_minute"], account["learned_per_minute"])
    return FeedItem(
        account["rate_changed_at"] or account["updated_at"],
        "throttled",
        f"SMTP account “{account['name']}” sends at {per_minute:.0f}/min, the rate learned from its "
        f"server (configured {account['max_per_minute']}/min). {account['rate_note']}".strip(),
    )


def recipient_feed_item(event, names):
    campaign_id, kind = event["campaign_id"], event["kind"]
    if kind == Event.Kind.BOUNCE:
        status = f" ({event['email__bounce_status']})" if event["email__bounce_status"] else ""
        what = f"{event['email__bounce_kind'] or 'soft'}-bounced after delivery{status}"
    elif kind == Event.Kind.COMPLAINT:
        what = "reported it as spam"
    else:
        what = "unsubscribed"
    return FeedItem(
        event["at"], kind, f"{event['email__to_email']} {what} ({names.get(campaign_id, '?')})", campaign_id
    )


def failure_feed_item(failure, names):
    failure_class, campaign_id = failure["failure_class"], failure["campaign_id"]
    word = FAILURE_WORDS.get(failure_class, "failed")
    code = f" ({failure['smtp_code']})" if failure["smtp_code"] else ""
    if failure_class == Email.FailureClass.ERROR:
        code = f": {failure['smtp_response']}"  # no server answered: the error itself says what went wrong
    kind = "bounce" if failure_class == Email.FailureClass.BOUNCED else "failed"
    return FeedItem(
        failure["updated_at"], kind, f"{failure['to_email']} {word}{code} ({names.get(campaign_id, '?')})", campaign_id
    )


def queue_length():
    """Messages waiting in the Celery broker's queues (None when they cannot be read)."""
    if settings.REDIS_URL:
        try:
            import redis

            client = redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=1, socket_timeout=1)
            try:
                return sum(client.llen(queue.name) for queue in settings.CELERY_TASK_QUEUES)
            finally:
                client.close()
        except Exception:  # noqa: BLE001  (a health panel must not break the page)
            return None
    folder = settings.CELERY_BROKER_TRANSPORT_OPTIONS.get("data_folder_in")
    try:
        import os

        return sum(1 for name in os.listdir(folder) if name.endswith(".msg"))
    except OSError:
        return None


def system_health(*, per_status, tz):
    state = (
        DispatcherState.objects.order_by("pk")
        .values(
            "last_tick_started_at",
            "last_tick_finished_at",
            "last_tick_duration_ms",
            "last_tick_claimed",
        )
        .first()
        or {}
    )
    return {
        "last_tick_at": state.get("last_tick_finished_at").isoformat() if state.get("last_tick_finished_at") else None,
        "last_tick_display": local_text(state.get("last_tick_finished_at"), tz, seconds=True),
        "last_tick_duration_ms": state.get("last_tick_duration_ms"),
        "last_tick_claimed": state.get("last_tick_claimed", 0),
        "queue_length": queue_length(),
        "emails_per_status": per_status,
        # Emails that failed on an unexpected error (a bug, an address no server here can take):
        # each is in the activity log with its text.
        "send_errors": CampaignTally.objects.filter(status=S.FAILED, failure_class=Email.FailureClass.ERROR).aggregate(
            n=Sum("n")
        )["n"]
        or 0,
    }
