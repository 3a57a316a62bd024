"""The dashboard's and the analytics page's JSON: exact figures, owner scoping, and a fixed
number of SQL statements whatever the number of campaigns."""

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from campaigns.models import Campaign, Email
from tests.factories import CampaignEventFactory, CampaignFactory, EventFactory, LinkFactory, SmtpAccountFactory
from tracking.models import Event

pytestmark = pytest.mark.django_db

S = Email.Status
F = Email.FailureClass
# The session and the user (admin_view), then the selector's own statements (the campaign events of
# the activity feed among them), read in one snapshot (a savepoint's two statements inside a test).
DASHBOARD_MAX_QUERIES = 12  # with the later bounces and complaints
ANALYTICS_MAX_QUERIES = 9  # with the count of possible duplicates and the later bounces and complaints


def add_emails(campaign, specs):
    """specs: (count, fields) pairs; returns the created rows in order."""
    rows, n = [], Email.objects.filter(campaign=campaign).count()
    for count, fields in specs:
        for _ in range(count):
            n += 1
            rows.append(Email(campaign=campaign, to_email=f"r{n}-c{campaign.pk}@example.org", **fields))
    return Email.objects.bulk_create(rows)


@pytest.fixture
def known_campaign(marketer):
    """A sending campaign with emails in every status (15 in all)."""
    now = timezone.now()
    account = SmtpAccountFactory(owner=marketer, max_per_minute=120)
    campaign = CampaignFactory(
        owner=marketer,
        smtp_account=account,
        name="Known",
        status=Campaign.Status.SENDING,
        started_at=now - timedelta(minutes=5),
    )
    CampaignEventFactory(campaign=campaign, at=campaign.started_at)  # scheduled -> sending, by the system
    sent = dict(status=S.SENT, sent_at=now - timedelta(minutes=1), smtp_code=250, smtp_response="2.0.0 OK")
    rows = add_emails(
        campaign,
        [
            (2, {**sent, "first_opened_at": now, "open_count": 1}),  # human opens
            (
                1,
                {**sent, "machine_open": True, "possible_duplicate": True},
            ),  # a machine open only: not in the open rate
            (
                1,
                {
                    **sent,
                    "first_opened_at": now,
                    "open_count": 2,
                    "machine_open": True,
                    "click_count": 3,
                    "first_clicked_at": now,
                },
            ),  # a reader who clicked (and whose proxy also fetched)
            (1, {**sent, "unsubscribed_at": now}),
            (
                1,
                {
                    **sent,
                    "unsubscribed_at": now,
                    "bounced_at": now,
                    "bounce_kind": "hard",
                    "bounce_status": "5.1.1",
                    "bounce_text": "550 5.1.1 user unknown",
                    "complained_at": now,
                },
            ),  # a delivery report after the 250: bounced, and its recipient complained
            (1, {"status": S.PENDING}),
            (1, {"status": S.QUEUED}),
            (
                2,
                {
                    "status": S.DEFERRED,
                    "next_attempt_at": now + timedelta(seconds=30),
                    "smtp_code": 451,
                    "possible_duplicate": True,
                },
            ),
            (1, {"status": S.FAILED, "failure_class": F.THROTTLED, "smtp_code": 451}),
            (
                2,
                {
                    "status": S.FAILED,
                    "failure_class": F.BOUNCED,
                    "smtp_code": 550,
                    "smtp_response": "5.1.1 no such user",
                },
            ),
            (1, {"status": S.FAILED, "failure_class": F.REJECTED, "smtp_code": 554}),
            (1, {"status": S.CANCELLED}),
        ],
    )
    link_a, link_b = (
        LinkFactory(campaign=campaign, url="https://example.com/a"),
        LinkFactory(campaign=campaign, url="https://example.com/b"),
    )
    clicker = rows[3]
    for link in (link_a, link_a, link_b):
        EventFactory(email=clicker, kind=Event.Kind.CLICK, link=link)
    EventFactory(email=rows[4], kind=Event.Kind.UNSUBSCRIBE)
    reported = campaign.emails.get(complained_at__isnull=False)
    EventFactory(email=reported, kind=Event.Kind.BOUNCE, user_agent="")
    EventFactory(email=reported, kind=Event.Kind.COMPLAINT, user_agent="")
    return campaign


def test_analytics_figures_are_exact(marketer_client, known_campaign):
    response = marketer_client.get(reverse("campaign_analytics_data", args=[known_campaign.pk]))
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    data = response.json()
    assert data["counts"] == {
        "total": 15,
        "sent": 6,
        "failed": 4,
        "pending": 4,
        "pending_only": 1,
        "queued": 1,
        "deferred": 2,
        "cancelled": 1,
        "possible_duplicates": 3,
    }
    assert data["breakdown"] == {
        "sent": 6,
        "deferred": 2,
        "failed_throttled": 1,
        "failed_bounced": 2,
        "failed_rejected": 1,
        "failed_error": 0,
        "failed_other": 0,
        "opened": 3,
        "clicked": 1,
        "unsubscribed": 2,
        "bounced_later": 1,
        "bounced_hard": 1,
        "bounced_soft": 0,
        "complained": 1,
    }
    # 3 human opens of 6 sent; the machine-only open is shown apart.
    assert data["rates"] == {
        "open_rate": 50.0,
        "click_rate": 16.7,
        "machine_opens": 1,
        "machine_open_rate": 16.7,
        "unsubscribed": 2,
        "unsubscribe_rate": 33.3,
        "bounced_later": 1,
        "bounced_later_rate": 16.7,
        "complained": 1,
        "complaint_rate": 16.7,
    }
    bars = {bar["key"]: (bar["count"], bar["of"], bar["percent"]) for bar in data["bars"]}
    assert bars == {
        "sent": (6, 15, 40.0),
        "deferred": (2, 15, 13.3),
        "failed_throttled": (1, 15, 6.7),
        "failed_bounced": (2, 15, 13.3),
        "failed_rejected": (1, 15, 6.7),
        "failed_error": (0, 15, 0.0),
        "failed_other": (0, 15, 0.0),
        "opened": (3, 6, 50.0),
        "clicked": (1, 6, 16.7),
        "unsubscribed": (2, 6, 33.3),
        "bounced_later": (1, 6, 16.7),
        "complained": (1, 6, 16.7),
    }
    assert data["progress"]["done"] == 11 and data["progress"]["total"] == 15
    assert data["progress"]["percent"] == 73.3
    assert data["progress"]["per_minute"] == 120.0
    assert data["progress"]["eta_seconds"] == 2  # 4 unsent at 120/min
    assert data["top_links"] == [
        {"url": "https://example.com/a", "clicks": 2},
        {"url": "https://example.com/b", "clicks": 1},
    ]
    recipients = data["recipients"]
    assert recipients["count"] == 15 and recipients["pages"] == 1 and len(recipients["rows"]) == 15
    bounced = [r for r in recipients["rows"] if r["status"] == "failed" and "5.1.1" in r["smtp"]]
    assert len(bounced) == 2 and bounced[0]["smtp"] == "550 5.1.1 no such user"
    unsubscribed = [r for r in recipients["rows"] if r["unsubscribed"]]
    assert len(unsubscribed) == 2 and all(r["unsubscribed_display"] for r in unsubscribed)
    assert all(r["unsubscribed_display"] == "" for r in recipients["rows"] if not r["unsubscribed"])
    assert [r["late_report"] for r in recipients["rows"] if r["late_report"]] == [
        "hard bounce 5.1.1: 550 5.1.1 user unknown; complained (spam report)"
    ]


def test_analytics_recipient_search_and_pages(marketer_client, known_campaign):
    url = reverse("campaign_analytics_data", args=[known_campaign.pk])
    found = marketer_client.get(url, {"q": "R1"}).json()["recipients"]
    # r1, r10..r15 of this campaign, whatever the case of the search
    assert found["count"] == 7 and {r["to_email"].split("-")[0] for r in found["rows"]} >= {"r1", "r10", "r15"}
    add_emails(known_campaign, [(30, {"status": S.PENDING})])
    page2 = marketer_client.get(url, {"page": "2"}).json()["recipients"]
    assert page2["pages"] == 2 and page2["page"] == 2 and len(page2["rows"]) == 20
    assert marketer_client.get(url, {"page": "99"}).json()["recipients"]["page"] == 2


def test_dashboard_cards_top_campaigns_and_timeline(marketer_client, known_campaign, marketer):
    other = CampaignFactory(owner=marketer, smtp_account=known_campaign.smtp_account, name="Quiet")
    add_emails(
        other,
        [
            (4, {"status": S.SENT, "sent_at": timezone.now()}),
            (1, {"status": S.SENT, "sent_at": timezone.now(), "first_opened_at": timezone.now()}),
        ],
    )
    data = marketer_client.get(reverse("dashboard_data")).json()
    cards = data["cards"]
    assert cards["sent"] == {"total": 11, "today": 11}
    assert cards["failed"] == {"total": 4, "today": 4, "bounced_later": 1, "complained": 1}
    assert cards["pending"] == {"total": 4, "queued": 1, "deferred": 2}  # pending + queued + deferred
    assert cards["opened"]["total"] == 4  # human opens only
    assert cards["open_rate"] == 36.4
    assert [(c["name"], c["sent"], c["open_rate"], c["machine_opens"]) for c in data["top_campaigns"]] == [
        ("Known", 6, 50.0, 1),
        ("Quiet", 5, 20.0, 0),
    ]
    today = data["timeline"][-1]
    assert len(data["timeline"]) == 7
    assert today["sent"] == 11 and today["opened"] == 4
    assert {(c["name"], c["sent"], c["open_rate"]) for c in today["campaigns"]} == {
        ("Known", 6, 50.0),
        ("Quiet", 5, 20.0),
    }
    assert data["sending"] == [{"id": known_campaign.pk, "name": "Known"}]
    kinds = {item["kind"] for item in data["activity"]}
    assert {"started", "unsubscribe", "bounce", "complaint", "failed"} <= kinds
    texts = [item["text"] for item in data["activity"]]
    assert any(t.startswith("r") and "hard-bounced after delivery (5.1.1) (Known)" in t for t in texts)
    assert any("reported it as spam (Known)" in t for t in texts)
    assert "system" not in data


def test_dashboard_shows_paused_accounts_and_throttling(marketer_client, marketer):
    until = timezone.now() + timedelta(minutes=30)
    SmtpAccountFactory(owner=marketer, name="Main", paused_until=until, pause_reason="550 5.4.5 Daily quota exceeded")
    SmtpAccountFactory(
        owner=marketer,
        name="Slow",
        max_per_minute=60,
        learned_per_minute=30,
        rate_note="Throttled (“450 4.7.1 Error: too much mail”): sending at 30/min.",
    )
    data = marketer_client.get(reverse("dashboard_data")).json()
    assert [(a["name"], a["reason"]) for a in data["paused_accounts"]] == [("Main", "550 5.4.5 Daily quota exceeded")]
    texts = [item["text"] for item in data["activity"]]
    assert any("“Main” paused by the system" in t and "Daily quota" in t for t in texts)
    assert any(
        "“Slow” sends at 30/min, the rate learned from its server (configured 60/min)" in t and "too much mail" in t
        for t in texts
    )
    assert data["sending"] == []


def test_another_marketers_campaign_answers_404(other_client, known_campaign):
    assert other_client.get(reverse("campaign_analytics_data", args=[known_campaign.pk])).status_code == 404
    assert other_client.get(reverse("campaign_analytics", args=[known_campaign.pk])).status_code == 404
    data = other_client.get(reverse("dashboard_data")).json()
    assert data["cards"]["sent"]["total"] == 0 and data["top_campaigns"] == [] and data["activity"] == []


def test_anonymous_users_are_sent_to_login(client, known_campaign):
    assert client.get(reverse("dashboard_data")).status_code == 302
    assert client.get(reverse("campaign_analytics_data", args=[known_campaign.pk])).status_code == 302


def test_superuser_sees_every_marketer_and_the_system(superuser_client, known_campaign):
    data = superuser_client.get(reverse("dashboard_data")).json()
    assert data["cards"]["sent"]["total"] == 6
    system = data["system"]
    assert system["emails_per_status"] == {
        "pending": 1,
        "queued": 1,
        "sent": 6,
        "deferred": 2,
        "failed": 4,
        "cancelled": 1,
    }
    assert {"last_tick_at", "last_tick_duration_ms", "queue_length"} <= set(system)
    assert superuser_client.get(reverse("campaign_analytics_data", args=[known_campaign.pk])).status_code == 200


def make_campaigns(owner, n):
    account = SmtpAccountFactory(owner=owner)
    now = timezone.now()
    for i in range(n):
        campaign = CampaignFactory(
            owner=owner,
            smtp_account=account,
            status=Campaign.Status.COMPLETED,
            started_at=now - timedelta(days=i % 7, hours=1),
            completed_at=now - timedelta(days=i % 7),
        )
        CampaignEventFactory(campaign=campaign, at=campaign.started_at, acting_user=owner)
        CampaignEventFactory(
            campaign=campaign,
            at=campaign.completed_at,
            from_status=Campaign.Status.SENDING,
            to_status=Campaign.Status.COMPLETED,
        )
        rows = add_emails(
            campaign,
            [
                (2, {"status": S.SENT, "sent_at": now - timedelta(days=i % 7), "first_opened_at": now}),
                (1, {"status": S.FAILED, "failure_class": F.BOUNCED}),
                (1, {"status": S.PENDING}),
            ],
        )
        link = LinkFactory(campaign=campaign)
        EventFactory(email=rows[0], kind=Event.Kind.CLICK, link=link)
        EventFactory(email=rows[1], kind=Event.Kind.UNSUBSCRIBE)


def count_queries(client, url):
    with CaptureQueriesContext(connection) as captured:
        assert client.get(url).status_code == 200
    return len(captured)


@pytest.mark.parametrize("n_campaigns", [1, 50])
def test_dashboard_query_count_does_not_grow_with_campaigns(
    marketer_client, marketer, n_campaigns, django_assert_max_num_queries
):
    make_campaigns(marketer, n_campaigns)
    with django_assert_max_num_queries(DASHBOARD_MAX_QUERIES):
        data = marketer_client.get(reverse("dashboard_data")).json()
    assert data["cards"]["sent"]["total"] == 2 * n_campaigns


def test_dashboard_and_analytics_make_the_same_queries_for_1_and_50_campaigns(client, db):
    from tests.factories import MarketerFactory

    small, large = MarketerFactory(username="small"), MarketerFactory(username="large")
    make_campaigns(small, 1)
    make_campaigns(large, 50)
    figures = []
    for user in (small, large):
        client.force_login(user)
        campaign = Campaign.objects.filter(owner=user).first()
        figures.append(
            (
                count_queries(client, reverse("dashboard_data")),
                count_queries(client, reverse("campaign_analytics_data", args=[campaign.pk])),
                count_queries(client, reverse("campaign_analytics_data", args=[campaign.pk]) + "?q=r1"),
            )
        )
    assert figures[0] == figures[1]
    assert figures[0][0] <= DASHBOARD_MAX_QUERIES and figures[0][2] <= ANALYTICS_MAX_QUERIES


def test_superuser_dashboard_query_count_is_fixed(superuser_client, marketer, django_assert_max_num_queries):
    make_campaigns(marketer, 10)
    with django_assert_max_num_queries(DASHBOARD_MAX_QUERIES + 2):
        assert superuser_client.get(reverse("dashboard_data")).status_code == 200


def test_pages_render_with_their_scripts_and_a_strict_policy(marketer_client, known_campaign):
    index = marketer_client.get(reverse("admin:index"))
    assert index.status_code == 200
    html = index.content.decode()
    assert 'id="live-dashboard"' in html and "vendor/chartjs/chart.umd.min.js" in html and "js/dashboard.js" in html
    assert 'id="content-main"' in html  # the admin's app list stays
    assert "default-src 'self'" in index["Content-Security-Policy"]
    page = marketer_client.get(reverse("campaign_analytics", args=[known_campaign.pk]))
    assert page.status_code == 200
    assert b'id="count-unsubscribed"' in page.content
    assert b"js/analytics.js" in page.content and b'id="breakdown-rows"' in page.content
    assert b"<script>" not in page.content and b"<script>" not in index.content
    change = marketer_client.get(reverse("admin:campaigns_campaign_change", args=[known_campaign.pk]))
    assert reverse("campaign_analytics", args=[known_campaign.pk]).encode() in change.content
    changelist = marketer_client.get(reverse("admin:campaigns_campaign_changelist"))
    assert reverse("campaign_analytics", args=[known_campaign.pk]).encode() in changelist.content


def test_every_page_carries_the_strict_policy_and_the_preview_allows_remote_images(marketer_client, known_campaign):
    from django.conf import settings

    policy = marketer_client.get(reverse("admin:campaigns_campaign_changelist"))["Content-Security-Policy"]
    assert policy == settings.CONTENT_SECURITY_POLICY
    assert "default-src 'self'" in policy and "object-src 'none'" in policy and "https:" not in policy
    preview = marketer_client.get(reverse("admin:campaigns_campaign_preview", args=[known_campaign.pk]))
    assert preview.status_code == 200
    assert "img-src 'self' data: https:" in preview["Content-Security-Policy"]
    assert b"onchange=" not in preview.content  # inline handlers would be refused by the policy


def test_chart_js_is_vendored_with_its_licence():
    from django.conf import settings

    vendor = settings.BASE_DIR / "static" / "vendor" / "chartjs"
    assert (vendor / "chart.umd.min.js").read_text().startswith("/*!\n * Chart.js v4.")
    assert (
        "MIT" in (vendor / "LICENSE.md").read_text()
        or "Permission is hereby granted" in (vendor / "LICENSE.md").read_text()
    )


def test_timeline_days_are_the_marketers_own_days(marketer):
    """At noon in Kolkata, 23:30 yesterday and 00:30 today (both the 27th in UTC) fall on different days."""
    from datetime import datetime
    from zoneinfo import ZoneInfo

    from reporting.selectors.dashboard import dashboard

    kolkata = ZoneInfo("Asia/Kolkata")
    now = datetime(2026, 11, 28, 12, 0, tzinfo=kolkata)
    campaign = CampaignFactory(owner=marketer, status=Campaign.Status.SENDING)
    add_emails(
        campaign,
        [
            (1, {"status": S.SENT, "sent_at": datetime(2026, 11, 27, 23, 30, tzinfo=kolkata)}),
            (
                2,
                {
                    "status": S.SENT,
                    "sent_at": datetime(2026, 11, 28, 0, 30, tzinfo=kolkata),
                    "first_opened_at": datetime(2026, 11, 28, 0, 45, tzinfo=kolkata),
                },
            ),
            (1, {"status": S.SENT, "sent_at": datetime(2026, 11, 21, 23, 59, tzinfo=kolkata)}),  # 8 days ago: out
        ],
    )
    data = dashboard(user=marketer, now=now)
    days = {day["date"]: (day["sent"], day["opened"]) for day in data["timeline"]}
    assert list(days) == [f"2026-11-{d}" for d in range(22, 29)]
    assert days["2026-11-27"] == (1, 0) and days["2026-11-28"] == (2, 2)
    assert sum(sent for sent, _ in days.values()) == 3
    assert data["cards"]["sent"] == {"total": 4, "today": 2}
    assert data["cards"]["opened"] == {"total": 2, "today": 2}


@pytest.mark.parametrize("zone", ["Asia/Kathmandu", "Asia/Kolkata", "America/St_Johns", "Europe/Berlin", "UTC"])
def test_an_hour_holding_the_viewers_midnight_is_split_at_the_quarter_hour(marketer, zone):
    """Kathmandu's midnight is 18:15 UTC, Kolkata's 18:30, St John's 03:30: rows of that one UTC hour,
    a minute either side of it, land on different days; failures recorded today are today's. (Berlin's
    and UTC's midnights begin an hour: nothing to split.)"""
    from datetime import datetime
    from zoneinfo import ZoneInfo

    from reporting.selectors.dashboard import dashboard

    tz = ZoneInfo(zone)
    marketer.timezone = zone
    marketer.save(update_fields=["timezone"])
    midnight = datetime(2026, 11, 28, 0, 0, tzinfo=tz)
    now = datetime(2026, 11, 28, 12, 0, tzinfo=tz)
    campaign = CampaignFactory(owner=marketer, status=Campaign.Status.SENDING)
    before, after = midnight - timedelta(minutes=1), midnight + timedelta(minutes=1)
    add_emails(
        campaign,
        [
            (1, {"status": S.SENT, "sent_at": before, "first_opened_at": after}),
            (3, {"status": S.SENT, "sent_at": after, "first_opened_at": after}),
            (2, {"status": S.SENT, "sent_at": after}),
            (1, {"status": S.SENT, "sent_at": before}),
            (1, {"status": S.SENT, "sent_at": midnight - timedelta(days=7, minutes=1)}),  # before the 7 days
        ],
    )
    failed = add_emails(campaign, [(2, {"status": S.FAILED, "failure_class": F.BOUNCED})])
    Email.objects.filter(pk=failed[0].pk).update(updated_at=before)
    Email.objects.filter(pk=failed[1].pk).update(updated_at=after)
    data = dashboard(user=marketer, now=now)
    days = {day["date"]: (day["sent"], day["opened"]) for day in data["timeline"]}
    assert days["2026-11-27"] == (2, 0) and days["2026-11-28"] == (5, 4)
    assert sum(sent for sent, _ in days.values()) == 7
    today = data["timeline"][-1]["campaigns"]
    assert today == [{"id": campaign.pk, "name": campaign.name, "sent": 5, "open_rate": 60.0}]
    yesterday = data["timeline"][-2]["campaigns"]
    assert yesterday == [{"id": campaign.pk, "name": campaign.name, "sent": 2, "open_rate": 50.0}]
    assert data["cards"]["sent"] == {"total": 8, "today": 5}
    assert data["cards"]["opened"] == {"total": 4, "today": 4}
    assert data["cards"]["failed"] == {"total": 2, "today": 1, "bounced_later": 0, "complained": 0}


def test_a_week_across_a_clock_change_keeps_every_day_exact(marketer):
    """St John's went from -02:30 to -03:30 on 1 November 2026: that day has 25 hours, and the
    midnights either side of it fall at 02:30 and 03:30 UTC."""
    from datetime import datetime
    from zoneinfo import ZoneInfo

    from reporting.selectors.dashboard import dashboard

    tz = ZoneInfo("America/St_Johns")
    marketer.timezone = "America/St_Johns"
    marketer.save(update_fields=["timezone"])
    campaign = CampaignFactory(owner=marketer, status=Campaign.Status.SENDING)
    specs = []
    for day in (31, 1, 2):  # midnights of 31 October (-02:30), 1 and 2 November (-03:30 from 1 Nov 02:00)
        month = 10 if day == 31 else 11
        midnight = datetime(2026, month, day, 0, 0, tzinfo=tz)
        specs += [
            (1, {"status": S.SENT, "sent_at": midnight - timedelta(minutes=1)}),
            (2, {"status": S.SENT, "sent_at": midnight + timedelta(minutes=1)}),
        ]
    specs.append((4, {"status": S.SENT, "sent_at": datetime(2026, 11, 1, 23, 59, tzinfo=tz)}))  # the 25th hour's day
    add_emails(campaign, specs)
    data = dashboard(user=marketer, now=datetime(2026, 11, 3, 12, 0, tzinfo=tz))
    days = {day["date"]: day["sent"] for day in data["timeline"]}
    assert days == {
        "2026-10-28": 0,
        "2026-10-29": 0,
        "2026-10-30": 1,
        "2026-10-31": 3,
        "2026-11-01": 7,
        "2026-11-02": 2,
        "2026-11-03": 0,
    }


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_cards_and_chart_are_read_in_one_snapshot_while_an_email_is_sent_between_their_reads(marketer, monkeypatch):
    import threading

    from django.db import connections

    from reporting.selectors import dashboard as dashboard_selectors

    campaign = CampaignFactory(owner=marketer, status=Campaign.Status.SENDING)
    add_emails(campaign, [(2, {"status": S.SENT, "sent_at": timezone.now()})])
    read_week = dashboard_selectors.week_figures

    def send_one_more_from_another_connection():
        try:
            add_emails(campaign, [(1, {"status": S.SENT, "sent_at": timezone.now()})])
        finally:
            connections.close_all()

    def week_figures_after_a_concurrent_send(**kwargs):
        # The cards' tallies are read; another worker commits a sent email before the chart's are.
        writer = threading.Thread(target=send_one_more_from_another_connection)
        writer.start()
        writer.join()
        return read_week(**kwargs)

    monkeypatch.setattr(dashboard_selectors, "week_figures", week_figures_after_a_concurrent_send)
    data = dashboard_selectors.dashboard(user=marketer)
    assert data["cards"]["sent"]["total"] == sum(day["sent"] for day in data["timeline"]) == 2
    assert data["cards"]["sent"]["today"] == 2
    monkeypatch.setattr(dashboard_selectors, "week_figures", read_week)
    data = dashboard_selectors.dashboard(user=marketer)
    assert data["cards"]["sent"]["total"] == sum(day["sent"] for day in data["timeline"]) == 3
