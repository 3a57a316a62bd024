"""Review and send in Chromium, from a draft: open the campaign, Review and send, tick the warnings,
schedule it and see it Scheduled; Send now through a real Celery beat and worker to an SMTP server
in this test; the confirmation pages of a step and of a list action. Screenshots of the review page
at 1366 and 1920 px and of the confirmations go to test-artifacts/review-*.png."""

import datetime as dt
import io
import zoneinfo

import pytest
from django.core.management import call_command
from django.db import close_old_connections
from playwright.sync_api import expect

from campaigns.models import Campaign, Email
from contacts.models import Contact
from sending.models import SmtpAccount
from tests.e2e.test_dashboard_browser import (  # noqa: F401  (pytest fixtures)
    ARTIFACTS,
    chromium,
    end_live_server_connections,
)
from tests.e2e.test_layout_browser import LAPTOP, log_in
from tests.e2e.test_worker_sends_campaign import (  # noqa: F401  (fixtures)
    campaign_status,
    celery_cluster,
    e2e_broker_url,
    email_status_counts,
    quiet_smtp_log,
)
from tests.factories import CampaignFactory, ContactFactory, ContactListFactory, MarketerFactory, SmtpAccountFactory
from tests.smtp_server import RecordingHandler, smtp_server_factory  # noqa: F401  (fixture)

pytestmark = [pytest.mark.browser]

WIDE = {"width": 1920, "height": 1080}
RECIPIENTS = 12
WAIT_MS = 30_000
LETTER = '<h1>Autumn</h1><p>Hello {{ name }}, from {{ City|default:"your town" }}.</p>' + (
    "<p>A letter long enough to read as one, about the season's new stock and its prices.</p>" * 40
)


def draft_of(owner, *, port=2525, name="Autumn letter"):
    account = SmtpAccountFactory(
        owner=owner,
        name=f"Relay for {name}",
        host="localhost",
        port=port,
        security=SmtpAccount.Security.NONE,
        username="",
        raw_password="",
        max_per_minute=600,
        batch_size=5,
    )
    contacts = Contact.objects.bulk_create(ContactFactory.build_batch(RECIPIENTS, owner=owner))
    readers = ContactListFactory(owner=owner, name=f"Readers of {name}", contacts=contacts)
    return CampaignFactory(owner=owner, name=name, smtp_account=account, lists=[readers], body_html=LETTER)


def overflow(page):
    return page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")


def full_shot(page, name):
    """The whole page at the viewport's width. The viewport is made as tall as the page rather than a
    full_page screenshot, which leaves the previews' iframes below the first screen blank."""
    width = page.viewport_size["width"]
    height = page.evaluate("document.documentElement.scrollHeight")
    page.set_viewport_size({"width": width, "height": height})
    page.screenshot(path=str(ARTIFACTS / name))
    page.set_viewport_size({"width": width, "height": 800})


def tick_every_warning(page):
    for box in page.locator("#checks input[name=acknowledged]").all():
        box.check()


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_draft_is_reviewed_ticked_and_scheduled_in_the_marketers_zone(live_server, chromium):  # noqa: F811
    close_old_connections()
    owner = MarketerFactory(username="reviewer", timezone="Asia/Kolkata")
    campaign = draft_of(owner)
    other = draft_of(owner, name="Second draft")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    # A laptop set to New York: the time is still typed, and shown, in the marketer's own zone.
    context = chromium.new_context(viewport=LAPTOP, timezone_id="America/New_York")
    page = context.new_page()
    violations = []
    page.on("console", lambda m: violations.append(m.text) if "Content Security Policy" in m.text else None)
    log_in(page, live_server.url, owner)

    page.goto(f"{live_server.url}/admin/campaigns/campaign/{campaign.pk}/change/")
    assert page.locator(".field-scheduled_for").inner_text().endswith("Schedule it from Review and send")
    assert [b.inner_text() for b in page.locator("#lifecycle-buttons a").all()] == [
        "Schedule…",
        "Send now…",
        "Cancel campaign…",
    ]
    page.click("#step-schedule")
    expect(page.locator("#audience")).to_contain_text("List: Readers")
    assert page.locator("#recipient-count").inner_text() == str(RECIPIENTS)
    assert page.get_by_text("In your own time zone: Asia/Kolkata.").is_visible()
    assert page.get_by_text("server time").count() == 0
    assert overflow(page) == 0
    full_shot(page, "review-page-1366.png")
    page.set_viewport_size(WIDE)
    assert overflow(page) == 0
    full_shot(page, "review-page-1920.png")
    page.set_viewport_size(LAPTOP)

    # Not ticked: refused, and the page says why.
    warnings = page.locator("#checks li.warning").count()
    assert warnings >= 1
    page.fill("#id_scheduled_at", "2030-12-01T10:00")
    page.click("#schedule-button")
    expect(page.locator("#checks .messagelist")).to_contain_text(f"{warnings} not ticked")
    assert Campaign.objects.get(pk=campaign.pk).status == Campaign.Status.DRAFT

    tick_every_warning(page)
    page.fill("#id_scheduled_at", "2030-12-01T10:00")
    page.click("#schedule-button")
    page.wait_for_url(f"{live_server.url}/admin/campaigns/campaign/{campaign.pk}/change/")
    expect(page.locator(".field-status")).to_contain_text("Scheduled")
    expect(page.locator(".field-scheduled_for")).to_contain_text("2030-12-01 10:00 (Asia/Kolkata)")
    campaign.refresh_from_db()
    assert campaign.scheduled_at == dt.datetime(2030, 12, 1, 10, 0, tzinfo=zoneinfo.ZoneInfo("Asia/Kolkata"))

    # A scheduled campaign offers pause, not schedule; the pause asks first, stating what waits.
    page.click("#step-pause")
    expect(page.locator("#consequence")).to_contain_text(f"its {RECIPIENTS} recipient(s) wait until you resume it")
    full_shot(page, "review-confirm-pause-1366.png")
    page.click("text=No, take me back")
    assert Campaign.objects.get(pk=campaign.pk).status == Campaign.Status.SCHEDULED

    # The list's "Send selected now" asks first too, with the count.
    page.goto(f"{live_server.url}/admin/campaigns/campaign/")
    page.check(f"input[name=_selected_action][value='{other.pk}']")
    page.select_option("select[name=action]", "send_now")
    page.click("button[name=index]")
    expect(page.locator("#action-summary")).to_have_text(f"{RECIPIENTS} email(s) of 1 campaign(s) will go out now.")
    full_shot(page, "review-confirm-send-now-action-1366.png")
    page.click("text=No, take me back")
    assert Campaign.objects.get(pk=other.pk).status == Campaign.Status.DRAFT
    assert violations == []
    context.close()


@pytest.mark.e2e
@pytest.mark.redis
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_send_now_from_review_goes_through_to_sent(
    quiet_smtp_log,
    smtp_server_factory,  # noqa: F811
    celery_cluster,  # noqa: F811
    live_server,
    chromium,  # noqa: F811
    settings,
):
    close_old_connections()
    settings.DISPATCH_INTERVAL_SECONDS = 1
    handler = RecordingHandler()
    server = smtp_server_factory(handler)
    owner = MarketerFactory(username="sender")
    campaign = draft_of(owner, port=server.port)
    addresses = set(campaign.lists.get().contacts.values_list("email", flat=True))
    call_command("setup_schedules", stdout=io.StringIO())
    celery_cluster.start()

    page = chromium.new_page(viewport=LAPTOP)
    log_in(page, live_server.url, owner)
    page.goto(f"{live_server.url}/admin/campaigns/campaign/{campaign.pk}/change/")
    page.click("#step-send_now")
    tick_every_warning(page)
    page.click("#send-now-button")
    page.wait_for_url(f"{live_server.url}/admin/campaigns/campaign/{campaign.pk}/change/")
    expect(page.locator(".messagelist")).to_contain_text(f"Sending to {RECIPIENTS} recipient(s) now.")

    celery_cluster.wait_for(
        lambda: campaign_status(campaign.pk) == Campaign.Status.COMPLETED,
        timeout=90,
        describe=lambda: f"campaign {campaign_status(campaign.pk)}, emails {email_status_counts(campaign.pk)}",
    )
    handler.wait_for(lambda h: set(h.delivered_to()) == addresses, timeout=10)
    assert sorted(handler.delivered_to()) == sorted(addresses)
    assert set(Email.objects.filter(campaign=campaign).values_list("status", flat=True)) == {Email.Status.SENT}
    page.reload()
    expect(page.locator(".field-status")).to_contain_text("Completed")
    assert page.locator("#lifecycle-buttons").count() == 0
    page.close()
    celery_cluster.stop()
