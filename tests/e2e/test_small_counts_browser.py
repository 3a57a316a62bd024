"""A campaign's analytics page in Chromium with figures far apart: 20,000 sent beside 3 bounced.

Each figure has its own bar, so the 3 bounces must be drawn (a visible width), their count and rate
printed; unsubscribes show as a number and their recipients are marked in the table. The page is
served by pytest-django's live server under the strict Content-Security-Policy. A screenshot goes to
test-artifacts/campaign-analytics-small-counts.png.
"""

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
from tests.factories import PASSWORD, CampaignFactory, MarketerFactory

pytestmark = [pytest.mark.browser]

SENT = 20_000
BOUNCED = 3
UNSUBSCRIBED = 2
POSSIBLE_DUPLICATES = 2


@pytest.fixture
def lopsided_campaign(chromium):
    """Set up after the browser: the previous browser test's teardown ended every other session on the database
    (end_live_server_connections), and the connection this context holds may be one of them: drop it first."""
    close_old_connections()
    owner = MarketerFactory(username="lopsided")
    campaign = CampaignFactory(owner=owner, name="Lopsided", status=Campaign.Status.COMPLETED)
    now = timezone.now()
    sent = dict(status=Email.Status.SENT, sent_at=now - timedelta(minutes=5), smtp_code=250)
    # The unsubscribed and the bounced come first, so they are on the recipient table's first page.
    rows = [
        Email(campaign=campaign, to_email=f"gone{i}@example.org", unsubscribed_at=now, **sent)
        for i in range(UNSUBSCRIBED)
    ]
    rows += [
        Email(
            campaign=campaign,
            to_email=f"bounce{i}@example.org",
            status=Email.Status.FAILED,
            failure_class=Email.FailureClass.BOUNCED,
            smtp_code=550,
            smtp_response="5.1.1 no such user",
        )
        for i in range(BOUNCED)
    ]
    rows += [
        Email(campaign=campaign, to_email=f"twice{i}@example.org", possible_duplicate=True, **sent)
        for i in range(POSSIBLE_DUPLICATES)
    ]
    rows += [
        Email(campaign=campaign, to_email=f"r{i}@example.org", **sent)
        for i in range(SENT - UNSUBSCRIBED - POSSIBLE_DUPLICATES)
    ]
    Email.objects.bulk_create(rows, batch_size=5000)
    return campaign


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_three_bounces_beside_twenty_thousand_sent_are_visible(live_server, chromium, lopsided_campaign):
    campaign, owner = lopsided_campaign, lopsided_campaign.owner
    origin = live_server.url
    page = chromium.new_page(viewport={"width": 1400, "height": 1000})
    violations = []
    page.on("console", lambda m: violations.append(m.text) if "Content Security Policy" in m.text else None)
    page.goto(f"{origin}/admin/login/?next=/admin/")
    page.fill("#id_username", owner.username)
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_url(f"{origin}/admin/")

    page.goto(f"{origin}/admin/campaigns/campaign/{campaign.pk}/analytics/")
    page.wait_for_selector("#campaign-analytics[data-loaded='1']", timeout=15_000)

    bounced = page.locator("#breakdown-rows tr[data-figure='failed_bounced']")
    assert bounced.locator("td.num").nth(0).inner_text() == "3"
    assert bounced.locator("td.num").nth(1).inner_text() == "< 0.1%"
    fill = bounced.locator(".rate-bar-fill").bounding_box()
    assert fill is not None and fill["width"] >= 4 and fill["height"] >= 8
    assert page.locator("#breakdown-rows tr[data-figure='sent'] td.num").nth(1).inner_text() == "> 99.9%"
    sent_fill = page.locator("#breakdown-rows tr[data-figure='sent'] .rate-bar-fill").bounding_box()
    assert sent_fill["width"] > 20 * fill["width"]  # still in proportion where it can be
    none_fill = page.locator("#breakdown-rows tr[data-figure='failed_throttled'] .rate-bar-fill").bounding_box()
    assert none_fill is None or none_fill["width"] == 0  # nothing is drawn for nothing

    assert page.inner_text("#count-unsubscribed") == "2"
    assert page.inner_text("#count-possible-duplicates") == "2"
    assert page.inner_text("#rate-unsubscribe") == "< 0.1%"
    marked = page.locator("#recipient-rows tr.unsubscribed")
    assert marked.count() == UNSUBSCRIBED
    assert all(text.startswith("gone") and "unsubscribed" in text for text in marked.all_inner_texts())
    assert page.locator("#recipient-rows tr:not(.unsubscribed) .unsub-mark").count() == 0

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "campaign-analytics-small-counts.png"), full_page=True)
    assert violations == []
    page.close()
