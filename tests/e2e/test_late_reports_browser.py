"""Later bounces and complaints in Chromium: the campaign's analytics (card, bars, the recipient's row),
the dashboard's card and feed, and the contact's page. Screenshots go to test-artifacts/late-reports-*.png."""

from datetime import timedelta

import pytest
from django.db import close_old_connections
from django.utils import timezone

from campaigns.models import Campaign, Email
from tests.e2e.test_dashboard_browser import (  # noqa: F401  (pytest fixtures)
    ARTIFACTS,
    chromium,
    end_live_server_connections,
)
from tests.factories import (
    PASSWORD,
    CampaignFactory,
    ContactFactory,
    EventFactory,
    MarketerFactory,
    SmtpAccountFactory,
)
from tracking.models import Event

pytestmark = [pytest.mark.browser]


@pytest.fixture
def reported_campaign(chromium):
    close_old_connections()  # see test_small_counts_browser: the previous test may have ended this session
    owner = MarketerFactory(username="reported")
    campaign = CampaignFactory(owner=owner, name="December news", status=Campaign.Status.COMPLETED)
    now = timezone.now()
    sent = dict(status=Email.Status.SENT, sent_at=now - timedelta(hours=3), smtp_code=250, smtp_response="2.0.0 OK")
    asha = ContactFactory(owner=owner, email="asha@example.in", status="bounced")
    meera = ContactFactory(owner=owner, email="meera@example.in", status="complained")
    bounced = Email.objects.create(
        campaign=campaign,
        contact=asha,
        to_email=asha.email,
        bounced_at=now - timedelta(hours=1),
        bounce_kind="hard",
        bounce_status="5.1.1",
        bounce_text="550 5.1.1 <asha@example.in>: Recipient address rejected: User unknown",
        **sent,
    )
    complained = Email.objects.create(
        campaign=campaign, contact=meera, to_email=meera.email, complained_at=now - timedelta(minutes=30), **sent
    )
    Email.objects.bulk_create([Email(campaign=campaign, to_email=f"r{i}@example.org", **sent) for i in range(40)])
    EventFactory(email=bounced, kind=Event.Kind.BOUNCE, user_agent="")
    EventFactory(email=complained, kind=Event.Kind.COMPLAINT, user_agent="")
    account = SmtpAccountFactory(owner=owner, name="Main", bounce_address="bounces@mail.alice.example")
    return campaign, asha, account


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_later_bounces_and_complaints_show_on_the_pages(live_server, chromium, reported_campaign):
    campaign, asha, account = reported_campaign
    origin = live_server.url
    page = chromium.new_page(viewport={"width": 1366, "height": 900})
    violations = []
    page.on("console", lambda m: violations.append(m.text) if "Content Security Policy" in m.text else None)
    page.goto(f"{origin}/admin/login/?next=/admin/")
    page.fill("#id_username", campaign.owner.username)
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_url(f"{origin}/admin/")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)

    page.wait_for_selector("#card-bounced-later:not(:text('–'))", timeout=15_000)
    assert page.inner_text("#card-bounced-later") == "1" and page.inner_text("#card-complained") == "1"
    feed = page.inner_text(".activity-log")
    assert "asha@example.in hard-bounced after delivery (5.1.1)" in feed
    assert "meera@example.in reported it as spam" in feed
    page.screenshot(path=str(ARTIFACTS / "late-reports-dashboard.png"), full_page=True)

    page.goto(f"{origin}/admin/campaigns/campaign/{campaign.pk}/analytics/")
    page.wait_for_selector("#campaign-analytics[data-loaded='1']", timeout=15_000)
    assert page.inner_text("#count-bounced-later") == "1" and page.inner_text("#count-complained") == "1"
    later = page.locator("#breakdown-rows tr[data-figure='bounced_later']")
    assert later.locator("td.num").nth(0).inner_text() == "1"
    row = page.locator("#recipient-rows tr", has_text="asha@example.in")
    assert "later: hard bounce 5.1.1: 550 5.1.1" in row.inner_text()
    page.screenshot(path=str(ARTIFACTS / "late-reports-analytics.png"), full_page=True)

    page.goto(f"{origin}/admin/contacts/contact/{asha.pk}/change/")
    assert "December news · hard bounce after delivery: 5.1.1: 550 5.1.1" in page.inner_text(".delivery-problems")
    page.screenshot(path=str(ARTIFACTS / "late-reports-contact.png"), full_page=True)

    page.goto(f"{origin}/admin/sending/smtpaccount/{account.pk}/change/")
    assert page.input_value("#id_bounce_address") == "bounces@mail.alice.example"
    assert "so a late bounce names its email" in page.inner_text(".field-bounce_address")
    page.screenshot(path=str(ARTIFACTS / "late-reports-smtp-account.png"), full_page=True)
    assert violations == []
    page.close()
