"""What the dashboard (the admin index) shows, in a fixed number of aggregate queries.

Every figure is scoped to the user through `scope_to_user` (a superuser sees every
marketer). The number of statements does not depend on how many campaigns or emails
there are: counts are conditional aggregates grouped by campaign or by day, never a
query per campaign or per row.
"""

import zoneinfo
from types import SimpleNamespace
from datetime import datetime, time, timedelta

from django.conf import settings
from django.db.models import Case, Count, IntegerField, Q, Value, When
from django.utils import timezone

from accounts.models import SmtpAccount
from accounts.owned_admin import scope_to_user
from campaigns.delivery.rate_limit import effective_per_minute
from campaigns.models import Campaign, DispatcherState, Email
from tracking.models import Event

S = Email.Status
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


def campaign_counts(*, emails):
    """Per campaign: emails per status, reader opens, machine-only opens.

    Grouped by (campaign, status), the key of the covering index email_campaign_status_cover,
    counting campaign_id (no column outside that index): PostgreSQL can answer from the index alone.
    """
    counts = {}
    for row in emails.values("campaign_id", "status").order_by().annotate(
        n=Count("*"),
        opened=Count("campaign_id", filter=Q(first_opened_at__isnull=False)),
        machine_only=Count("campaign_id", filter=Q(machine_open=True, first_opened_at__isnull=True)),
    ):
        c = counts.setdefault(row["campaign_id"], {
            "sent": 0, "failed": 0, "unsent": 0, "queued": 0, "deferred": 0, "opened": 0, "machine_only": 0,
        })
        status = row["status"]
        if status in (S.SENT, S.FAILED, S.QUEUED, S.DEFERRED):
            c[status] += row["n"]
        if status in UNSENT_STATUSES:
            c["unsent"] += row["n"]
        c["opened"] += row["opened"]
        c["machine_only"] += row["machine_only"]
    return counts


def failed_today(*, emails, today_start):
    """Failures recorded today (sends and first opens of today come from the timeline's last day)."""
    return emails.filter(status=S.FAILED, updated_at__gte=today_start).order_by().aggregate(
        n=Count("campaign_id")
    )["n"]


def dashboard(*, user, now=None):
    now = now or timezone.now()
    tz = user_zone(user)
    today_start = start_of_day(now=now, tz=tz)
    week_start = start_of_day(now=now, tz=tz, days_back=TIMELINE_DAYS - 1)

    campaigns = list(
        scope_to_user(Campaign.objects.all(), user).values(
            "id", "name", "status", "status_reason", "started_at", "completed_at", "updated_at", "owner__username",
        )
    )
    # The user's campaign ids as a literal list: PostgreSQL then reads each campaign's rows from
    # the covering indexes (a join on the owner made it scan the whole table).
    emails = Email.objects.all() if user.is_superuser else Email.objects.filter(
        campaign_id__in=[c["id"] for c in campaigns]
    )
    counts = campaign_counts(emails=emails)

    # The user's local midnights of the last 7 days (DST-safe: each computed in the zone). A row's
    # day is found by comparing with them, cheaper per row than converting it to local time.
    midnights = [start_of_day(now=now, tz=tz, days_back=TIMELINE_DAYS - 1 - i) for i in range(TIMELINE_DAYS)]

    def day_of(field):
        return Case(
            *[When(**{f"{field}__gte": midnights[i]}, then=Value(i)) for i in reversed(range(TIMELINE_DAYS))],
            default=Value(0), output_field=IntegerField(),
        )

    # Sent per (day, campaign) with how many of those were opened by a reader; counting indexed
    # columns only, so both timeline queries read their partial index alone.
    sent_by_day = list(
        emails.filter(status=S.SENT, sent_at__gte=week_start)
        .annotate(day_index=day_of("sent_at"))
        .values("day_index", "campaign_id").order_by()
        .annotate(sent=Count("campaign_id"), opened=Count("campaign_id", filter=Q(first_opened_at__isnull=False)))
    )
    opened_by_day = list(
        emails.filter(first_opened_at__gte=week_start)
        .annotate(day_index=day_of("first_opened_at"))
        .values("day_index").order_by().annotate(opened=Count("campaign_id"))
    )
    for row in sent_by_day + opened_by_day:
        row["day"] = midnights[row["day_index"]].date()
    accounts = list(scope_to_user(SmtpAccount.objects.all(), user).values(
        "id", "name", "paused_until", "pause_reason", "max_per_minute", "throttle_factor", "updated_at",
    ))
    events = Event.objects.all() if user.is_superuser else Event.objects.filter(
        campaign_id__in=[c["id"] for c in campaigns]
    )
    unsubscribes = list(
        events.filter(kind=Event.Kind.UNSUBSCRIBE)
        .order_by("-at").values("at", "campaign_id", "email__to_email")[:ACTIVITY_ITEMS]
    )
    failures = list(
        emails.filter(status=S.FAILED).order_by("-updated_at")
        .values("updated_at", "campaign_id", "to_email", "failure_class", "smtp_code")[:ACTIVITY_ITEMS]
    )

    names = {c["id"]: c["name"] for c in campaigns}
    totals = {key: 0 for key in ("sent", "failed", "unsent", "queued", "deferred", "opened")}
    for row in counts.values():
        for key in totals:
            totals[key] += row[key]
    today = (now.astimezone(tz).date())
    totals["sent_today"] = sum(row["sent"] for row in sent_by_day if row["day"] == today)
    totals["opened_today"] = sum(row["opened"] for row in opened_by_day if row["day"] == today)
    totals["failed_today"] = failed_today(emails=emails, today_start=today_start)

    result = {
        "generated_at": now.isoformat(),
        "timezone": str(tz),
        "cards": {
            "sent": {"total": totals["sent"], "today": totals["sent_today"]},
            "failed": {"total": totals["failed"], "today": totals["failed_today"]},
            # Pending has no "today": it is what waits now; shown with what is in flight and retrying.
            "pending": {"total": totals["unsent"], "queued": totals["queued"], "deferred": totals["deferred"]},
            "opened": {"total": totals["opened"], "today": totals["opened_today"]},
            "open_rate": rate(totals["opened"], totals["sent"]),
            "open_rate_today": rate(totals["opened_today"], totals["sent_today"]),
        },
        "top_campaigns": top_campaigns(campaigns=campaigns, counts=counts),
        "timeline": timeline(sent_by_day=sent_by_day, opened_by_day=opened_by_day, names=names,
                             week_start=week_start, tz=tz),
        "activity": activity(campaigns=campaigns, accounts=accounts, unsubscribes=unsubscribes,
                             failures=failures, names=names, now=now, tz=tz),
        "sending": [
            {"id": c["id"], "name": c["name"]} for c in campaigns if c["status"] == Campaign.Status.SENDING
        ],
        "paused_accounts": [
            {
                "name": a["name"], "reason": a["pause_reason"], "until": a["paused_until"].isoformat(),
                "until_display": local_text(a["paused_until"], tz),
            }
            for a in accounts if a["paused_until"] and a["paused_until"] > now
        ],
    }
    if user.is_superuser:
        result["system"] = system_health()
    return result


def top_campaigns(*, campaigns, counts):
    rows = []
    for c in campaigns:
        row = counts.get(c["id"])
        if not row or not row["sent"]:
            continue
        rows.append({
            "id": c["id"], "name": c["name"], "owner": c["owner__username"], "status": c["status"],
            "sent": row["sent"], "opened": row["opened"], "open_rate": rate(row["opened"], row["sent"]),
            "machine_opens": row["machine_only"],
        })
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
        day["campaigns"].append({
            "id": row["campaign_id"], "name": names.get(row["campaign_id"], "?"), "sent": row["sent"],
            "open_rate": rate(row["opened"], row["sent"]),
        })
    for row in opened_by_day:
        if row["day"] in days:
            days[row["day"]]["opened"] = row["opened"]
    return [
        {"date": day.isoformat(), "label": day.strftime("%a %d %b"), **figures,
         "campaigns": sorted(figures["campaigns"], key=lambda c: -c["sent"])}
        for day, figures in sorted(days.items())
    ]


def local_text(moment, tz):
    return moment.astimezone(tz).strftime("%d %b %H:%M") if moment else ""


FAILURE_WORDS = {
    Email.FailureClass.BOUNCED: "bounced",
    Email.FailureClass.THROTTLED: "throttled out",
    Email.FailureClass.REJECTED: "rejected",
    Email.FailureClass.ACCOUNT: "failed (account problem)",
}


def activity(*, campaigns, accounts, unsubscribes, failures, names, now, tz):
    items = []
    for c in campaigns:
        if c["started_at"]:
            items.append((c["started_at"], "started", f"Campaign “{c['name']}” started sending", c["id"]))
        if c["completed_at"] and c["status"] == Campaign.Status.COMPLETED:
            items.append((c["completed_at"], "completed", f"Campaign “{c['name']}” completed", c["id"]))
        if c["status"] == Campaign.Status.PAUSED and c["status_reason"]:
            items.append((c["updated_at"], "paused", f"Campaign “{c['name']}” paused: {c['status_reason']}", c["id"]))
    for a in accounts:
        if a["paused_until"] and a["paused_until"] > now:
            items.append((a["updated_at"], "paused",
                          f"SMTP account “{a['name']}” paused by the system until "
                          f"{local_text(a['paused_until'], tz)}: {a['pause_reason'] or 'no reason given'}", None))
        if a["throttle_factor"] < 1.0:
            per_minute = effective_per_minute(SimpleNamespace(**a))
            items.append((a["updated_at"], "throttled",
                          f"SMTP account “{a['name']}” slowed to {per_minute:.0f}/min after throttling "
                          f"(limit {a['max_per_minute']}/min)", None))
    for u in unsubscribes:
        items.append((u["at"], "unsubscribe",
                      f"{u['email__to_email']} unsubscribed ({names.get(u['campaign_id'], '?')})", u["campaign_id"]))
    for f in failures:
        word = FAILURE_WORDS.get(f["failure_class"], "failed")
        code = f" ({f['smtp_code']})" if f["smtp_code"] else ""
        items.append((f["updated_at"], "bounce" if f["failure_class"] == Email.FailureClass.BOUNCED else "failed",
                       f"{f['to_email']} {word}{code} ({names.get(f['campaign_id'], '?')})", f["campaign_id"]))
    items.sort(key=lambda item: item[0], reverse=True)
    return [
        {"at": at.isoformat(), "at_display": local_text(at, tz), "kind": kind, "text": text, "campaign_id": cid}
        for at, kind, text, cid in items[:ACTIVITY_ITEMS]
    ]


def queue_length():
    """Messages waiting in the Celery broker's default queue (None when it cannot be read)."""
    if settings.REDIS_URL:
        try:
            import redis

            client = redis.Redis.from_url(settings.REDIS_URL, socket_connect_timeout=1, socket_timeout=1)
            try:
                return client.llen("celery")
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


def system_health():
    state = DispatcherState.objects.order_by("pk").values(
        "last_tick_started_at", "last_tick_finished_at", "last_tick_duration_ms", "last_tick_claimed",
    ).first() or {}
    per_status = {status: 0 for status in S.values}
    for row in Email.objects.values("status").order_by().annotate(n=Count("id")):
        per_status[row["status"]] = row["n"]
    return {
        "last_tick_at": state.get("last_tick_finished_at").isoformat() if state.get("last_tick_finished_at") else None,
        "last_tick_duration_ms": state.get("last_tick_duration_ms"),
        "last_tick_claimed": state.get("last_tick_claimed", 0),
        "queue_length": queue_length(),
        "emails_per_status": per_status,
    }
