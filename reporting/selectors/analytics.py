"""One campaign's analytics, in a fixed number of queries whatever its size.

The caller passes a campaign it already reached through the owner-scoped queryset
(`campaign_for`), so another owner's campaign never gets this far (404).
"""

from django.db.models import Count, Q
from django.http import Http404
from django.utils import timezone

from accounts.models import User
from accounts.owned_admin import scope_to_user
from campaigns.models import Campaign, CampaignTally, Email
from campaigns.selectors import audience
from reporting.selectors.dashboard import local_text, rate
from sending.rates import effective_per_minute, seconds_to_send
from sending.selectors import next_connection_try
from tracking.models import Event

S = Email.Status
C = Campaign.Status
F = Email.FailureClass
RECIPIENTS_PER_PAGE = 25
TOP_LINKS = 10


def campaign_for(*, user: User, campaign_id: int | str) -> Campaign:
    campaign = (
        scope_to_user(Campaign.objects.all(), user).select_related("smtp_account__state").filter(pk=campaign_id).first()
    )
    if campaign is None:
        raise Http404("No such campaign.")
    return campaign


SHOWN_FAILURES = (F.THROTTLED, F.BOUNCED, F.REJECTED, F.ERROR)  # each its own figure; the rest "failed otherwise"
FIGURES = (
    "total",
    "sent",
    "pending",
    "queued",
    "deferred",
    "failed",
    "cancelled",
    "failed_throttled",
    "failed_bounced",
    "failed_rejected",
    "failed_error",
    "opened",
    "machine_only",
    "clicked",
    "unsubscribed",
)


def campaign_figures(*, campaign: Campaign) -> dict[str, int]:
    """The campaign's counts by status, failure class and what happened, from its tallies
    (a few rows, whatever the campaign's size)."""
    c = dict.fromkeys(FIGURES, 0)
    for status, failure_class, n, opened, machine_only, clicked, unsubscribed in CampaignTally.objects.filter(
        campaign=campaign
    ).values_list("status", "failure_class", "n", "opened", "machine_only", "clicked", "unsubscribed"):
        c["total"] += n
        if status in c:
            c[status] += n
        if status == S.FAILED and failure_class in SHOWN_FAILURES:
            c[f"failed_{failure_class}"] += n
        c["opened"] += opened
        c["machine_only"] += machine_only
        c["clicked"] += clicked
        c["unsubscribed"] += unsubscribed
    c["failed_other"] = c["failed"] - sum(c[f"failed_{failure_class}"] for failure_class in SHOWN_FAILURES)
    return c


LATE_REPORT_FIGURES = ("bounced_hard", "bounced_soft", "complained")
# The Email rows a delivery report was recorded on: the partial index email_late_report holds them.
LATE_REPORTED = Q(bounced_at__isnull=False) | Q(complained_at__isnull=False)


def late_report_figures(*, campaign: Campaign) -> dict[str, int]:
    """Bounces and complaints that delivery reports brought after the server's 250 (bounces.services):
    counted from the campaign's few reported rows, in one statement."""
    return Email.objects.filter(LATE_REPORTED, campaign=campaign).aggregate(
        bounced_hard=Count("id", filter=Q(bounce_kind=Email.BounceKind.HARD)),
        bounced_soft=Count("id", filter=Q(bounce_kind=Email.BounceKind.SOFT)),
        complained=Count("id", filter=Q(complained_at__isnull=False)),
    )


def possible_duplicates(*, campaign: Campaign) -> int:
    """The campaign's rows that may have reached their recipient twice (Email.possible_duplicate),
    counted from their own small index."""
    return Email.objects.filter(campaign=campaign, possible_duplicate=True).count()


def analytics(*, campaign: Campaign, page: int = 1, search: str = "") -> dict:
    c = campaign_figures(campaign=campaign) | late_report_figures(campaign=campaign)
    c["bounced_later"] = c["bounced_hard"] + c["bounced_soft"]
    preparing = _preparing(campaign)
    # Recipients still to be written count as still to send: the bar and its estimate are of the whole
    # audience, not of the part written so far ("0 of 1,200 done" beside "1,200 of 1,000,000").
    to_write = preparing["expected"] - preparing["written"] if preparing else 0
    unsent = c["pending"] + c["queued"] + c["deferred"]
    final = c["sent"] + c["failed"] + c["cancelled"]
    audience_size = c["total"] + to_write
    account = campaign.smtp_account
    per_minute = effective_per_minute(account) if account else None
    blocked = sending_block(campaign=campaign)
    # An estimate only while the campaign sends and something can move: a paused campaign or an account
    # that is paused or cannot reach its server would otherwise count down a time that never passes.
    moving = campaign.status == C.SENDING and blocked is None and account is not None
    eta_seconds = seconds_to_send(account, unsent + to_write) if moving and account else 0

    top_links = [
        {"url": row["link__url"], "clicks": row["clicks"]}
        for row in Event.objects.filter(campaign=campaign, kind=Event.Kind.CLICK, link__isnull=False)
        .values("link__url")
        .order_by()
        .annotate(clicks=Count("id"))
        .order_by("-clicks", "link__url")[:TOP_LINKS]
    ]
    return {
        "campaign": {
            "id": campaign.pk,
            "name": campaign.name,
            "status": campaign.status,
            "status_display": campaign.get_status_display(),
            "status_reason": campaign.status_reason,
        },
        "counts": {
            "total": c["total"],
            "sent": c["sent"],
            "failed": c["failed"],
            "pending": unsent,
            "pending_only": c["pending"],
            "queued": c["queued"],
            "deferred": c["deferred"],
            "cancelled": c["cancelled"],
            "possible_duplicates": possible_duplicates(campaign=campaign),
        },
        "breakdown": {
            "sent": c["sent"],
            "deferred": c["deferred"],
            "failed_throttled": c["failed_throttled"],
            "failed_bounced": c["failed_bounced"],
            "failed_rejected": c["failed_rejected"],
            "failed_error": c["failed_error"],
            "failed_other": c["failed_other"],
            "opened": c["opened"],
            "clicked": c["clicked"],
            "unsubscribed": c["unsubscribed"],
            "bounced_later": c["bounced_later"],
            "bounced_hard": c["bounced_hard"],
            "bounced_soft": c["bounced_soft"],
            "complained": c["complained"],
        },
        "bars": delivery_bars(c),
        "rates": {
            "open_rate": rate(c["opened"], c["sent"]),
            "click_rate": rate(c["clicked"], c["sent"]),
            "unsubscribed": c["unsubscribed"],
            "unsubscribe_rate": rate(c["unsubscribed"], c["sent"]),
            "machine_opens": c["machine_only"],
            "machine_open_rate": rate(c["machine_only"], c["sent"]),
            "bounced_later": c["bounced_later"],
            "bounced_later_rate": rate(c["bounced_later"], c["sent"]),
            "complained": c["complained"],
            "complaint_rate": rate(c["complained"], c["sent"]),
        },
        "preparing": preparing,
        "progress": {
            "done": final,
            "total": audience_size,
            "percent": rate(final, audience_size) if audience_size else 0.0,
            "per_minute": round(per_minute, 1) if per_minute else None,
            "account_paused": bool(account and account.is_paused),
            "blocked": blocked,
            "eta_seconds": eta_seconds,
            "deferred": c["deferred"],
            "sharing_campaigns": sharing_campaigns(campaign=campaign) if eta_seconds else 0,
        },
        "updated_display": local_text(timezone.now(), timezone.get_current_timezone(), seconds=True),
        "top_links": top_links,
        "recipients": recipients_page(campaign=campaign, page=page, search=search, total=c["total"]),
    }


def sending_block(*, campaign: Campaign) -> dict | None:
    """What keeps a campaign that should be sending from sending now, in the marketer's words, or None:
    the campaign paused, or its SMTP account paused or unable to reach its server (from the account's state
    row, read with the campaign: select_related in campaign_for). Times in the user's zone."""
    tz = timezone.get_current_timezone()
    if campaign.status == C.PAUSED:
        why = f": {campaign.status_reason}" if campaign.status_reason else ""
        return {"kind": "campaign_paused", "text": f"The campaign is paused{why}. Nothing is sent until it is resumed."}
    account = campaign.smtp_account
    if account is None or campaign.status not in (C.SENDING, C.SCHEDULED):
        return None
    state, now = account.state, timezone.now()
    if state.is_paused:
        return {
            "kind": "account_paused",
            "text": f"The SMTP account “{account.name}” is paused until {local_text(state.paused_until, tz)}: "
            f"{state.pause_reason or 'no reason given'}. Its campaigns resume by themselves then.",
            "since_display": local_text(state.paused_at, tz),
            "until_display": local_text(state.paused_until, tz),
        }
    if state.is_unreachable:
        next_try = next_connection_try(state=state, now=now)
        return {
            "kind": "account_unreachable",
            "text": f"The SMTP account “{account.name}” cannot reach its server since "
            f"{local_text(state.unreachable_since, tz)}: {state.last_connection_error or 'no error recorded'}. "
            f"Next try at {local_text(next_try, tz)}; no email is lost or spent meanwhile.",
            "since_display": local_text(state.unreachable_since, tz),
            "next_try_display": local_text(next_try, tz),
        }
    return None


def sharing_campaigns(*, campaign: Campaign) -> int:
    """How many other campaigns send through the same account now (they share its rate)."""
    return (
        Campaign.objects.filter(smtp_account_id=campaign.smtp_account_id, status=C.SENDING)
        .exclude(pk=campaign.pk)
        .count()
    )


def _preparing(campaign):
    """{"written": n, "expected": N, "text": "preparing recipients (n of N)"} while a large campaign's
    recipients are being written, else None."""
    progress = audience.preparation_progress(campaign=campaign)
    if progress is None:
        return None
    return {"written": progress[0], "expected": progress[1], "text": audience.describe_preparation(progress)}


# (key, label, base): each figure gets its own bar, as a share of its own base, so 3 failures beside
# 20,000 sent still show (a shared axis would draw them as nothing).
BARS = (
    ("sent", "Sent", "total"),
    ("deferred", "Deferred (retrying)", "total"),
    ("failed_throttled", "Throttled out", "total"),
    ("failed_bounced", "Bounced", "total"),
    ("failed_rejected", "Rejected", "total"),
    ("failed_error", "Failed on an error", "total"),
    ("failed_other", "Failed otherwise", "total"),
    ("opened", "Opened", "sent"),
    ("clicked", "Clicked", "sent"),
    ("unsubscribed", "Unsubscribed", "sent"),
    ("bounced_later", "Bounced later (a report after the 250)", "sent"),
    ("complained", "Complained (spam report)", "sent"),
)
BASE_LABELS = {"total": "of all recipients", "sent": "of sent"}


def delivery_bars(c: dict) -> list[dict]:
    return [
        {
            "key": key,
            "label": label,
            "count": c[key],
            "of": c[base],
            "of_label": BASE_LABELS[base],
            "percent": rate(c[key], c[base]),
        }
        for key, label, base in BARS
    ]


def recipients_page(*, campaign: Campaign, page: int, search: str, total: int) -> dict:
    """One page of the recipient table: the campaign's email rows, searched by address (`total`: the
    campaign's count from its tallies, used when nothing is searched)."""
    # A range of one campaign, ordered by (campaign, id): the page comes from the index (campaign, id),
    # in order. With `campaign_id = pk` PostgreSQL may walk the primary key instead, filtering, as if the
    # campaign's rows were spread evenly through the table, and the first page of a campaign whose
    # rows come after many older ones would read past every one of them.
    rows = Email.objects.filter(campaign_id__gte=campaign.pk, campaign_id__lte=campaign.pk)
    search = (search or "").strip()
    if search:
        rows = rows.filter(to_email__icontains=search)
        count = rows.count()
    else:
        count = total
    pages = max(1, -(-count // RECIPIENTS_PER_PAGE))
    page = min(max(1, page), pages)
    start = (page - 1) * RECIPIENTS_PER_PAGE
    items = rows.order_by("campaign_id", "id").values(
        "id",
        "to_email",
        "status",
        "smtp_code",
        "smtp_response",
        "sent_at",
        "first_opened_at",
        "machine_open",
        "click_count",
        "unsubscribed_at",
        "bounce_kind",
        "bounce_status",
        "bounce_text",
        "complained_at",
    )[start : start + RECIPIENTS_PER_PAGE]
    labels = dict(S.choices)
    return {
        "page": page,
        "pages": pages,
        "count": count,
        "search": search,
        "rows": [
            {
                "to_email": r["to_email"],
                "status": r["status"],
                "status_display": labels.get(r["status"], r["status"]),
                "smtp": smtp_answer(r["smtp_code"], r["smtp_response"]),
                "sent_at": r["sent_at"].isoformat() if r["sent_at"] else None,
                # In the active zone: the user's own, set by accounts.middleware.
                "sent_display": local_text(r["sent_at"], timezone.get_current_timezone(), seconds=True),
                "opened": r["first_opened_at"] is not None,
                "machine_open": r["machine_open"],
                "clicks": r["click_count"],
                "late_report": late_report(
                    bounce_kind=r["bounce_kind"],
                    bounce_status=r["bounce_status"],
                    bounce_text=r["bounce_text"],
                    complained=r["complained_at"] is not None,
                ),
                "unsubscribed": r["unsubscribed_at"] is not None,
                "unsubscribed_display": local_text(r["unsubscribed_at"], timezone.get_current_timezone()),
            }
            for r in items
        ],
    }


def late_report(*, bounce_kind: str, bounce_status: str, bounce_text: str, complained: bool) -> str:
    """What a delivery report said of a sent row after the 250, in a few words ("" when none)."""
    parts = []
    if bounce_kind:
        bounce = " ".join(p for p in (f"{bounce_kind} bounce", bounce_status) if p)
        parts.append(f"{bounce}: {bounce_text}" if bounce_text else bounce)
    if complained:
        parts.append("complained (spam report)")
    return "; ".join(parts)


def smtp_answer(code: int | None, response: str | None) -> str:
    """The server's answer as one line: the code once, then its text."""
    response = (response or "").strip()
    if code and not response.startswith(str(code)):
        return f"{code} {response}".strip()
    return response
