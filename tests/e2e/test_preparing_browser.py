"""A large campaign's pages in Chromium while its recipients are still being written: the campaign list,
the campaign's page and its analytics page say "preparing recipients (n of N)". Screenshots go to
test-artifacts/campaign-preparing-*.png."""

import pytest
from django.db import close_old_connections
from django.utils import timezone
from playwright.sync_api import expect

from campaigns.models import Campaign, Email
from contacts.models import Contact
from tests.e2e.test_dashboard_browser import (  # noqa: F401  (pytest fixtures)
    ARTIFACTS,
    chromium,
    end_live_server_connections,
)
from tests.e2e.test_layout_browser import LAPTOP, log_in
from tests.factories import CampaignFactory, ContactListFactory, MarketerFactory

pytestmark = [pytest.mark.browser]

WRITTEN = 1200
EXPECTED = 1_000_000
PREPARING = f"preparing recipients ({WRITTEN:,} of {EXPECTED:,})"
WAIT_MS = 30_000


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_campaign_being_prepared_says_how_far_it_is(live_server, chromium):  # noqa: F811
    close_old_connections()
    owner = MarketerFactory(username="preparing")
    contacts = Contact.objects.bulk_create(
        Contact(owner=owner, email=f"reader{i}@example.org", name=f"Reader {i}") for i in range(WRITTEN)
    )
    campaign = CampaignFactory(
        owner=owner,
        name="A million readers",
        status=Campaign.Status.SENDING,
        started_at=timezone.now(),
        lists=[ContactListFactory(owner=owner, name="Readers", contacts=contacts)],
        # What lifecycle.start leaves while chunks are still to be written: the cursor at the last
        # contact written, the audience counted when it began.
        recipients_cursor=contacts[-1].pk,
        recipients_expected=EXPECTED,
    )
    Email.objects.bulk_create(
        Email(campaign=campaign, contact=contact, to_email=contact.email, to_name=contact.name) for contact in contacts
    )
    page = chromium.new_page(viewport=LAPTOP)
    log_in(page, live_server.url, owner)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)

    page.goto(f"{live_server.url}/admin/campaigns/campaign/")
    assert f"Sending: {PREPARING}" in page.locator("#result_list").inner_text()
    page.screenshot(path=str(ARTIFACTS / "campaign-preparing-list.png"), full_page=True)

    page.goto(f"{live_server.url}/admin/campaigns/campaign/{campaign.pk}/change/")
    assert PREPARING in page.locator(".field-preparation").inner_text()

    page.goto(f"{live_server.url}/admin/campaigns/campaign/{campaign.pk}/analytics/")
    preparing = page.locator("#campaign-preparing")
    expect(preparing).to_contain_text("preparing", timeout=WAIT_MS)
    assert preparing.inner_text() == PREPARING
    # The bar is of the whole audience, not of the part written so far.
    # (The preparing line is in the page as served; the bar is drawn by the first poll.)
    progress_text = page.locator("#progress-text")
    expect(progress_text).to_contain_text(" done ", timeout=WAIT_MS)
    assert progress_text.inner_text() == f"0 of {EXPECTED:,} done (0%)"
    page.screenshot(path=str(ARTIFACTS / "campaign-preparing-analytics.png"), full_page=True)

    # A campaign of ten million: every card's figure still fits its card (1,000,000 in the card's
    # 28px ran past its edge in a row of six at 1366px). Set and measured in one go, between polls.
    overflowing = page.evaluate("""() => {
        const cards = [...document.querySelectorAll('.card-value')];
        cards.forEach(value => { value.textContent = '10,000,000'; });
        return cards.filter(value => value.scrollWidth > value.clientWidth
                                     || value.getBoundingClientRect().right > value.parentElement.getBoundingClientRect().right)
                    .map(value => value.id);
    }""")
    assert len(page.locator(".card-value").all()) == 6 and overflowing == []
    page.close()
