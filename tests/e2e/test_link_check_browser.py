"""A campaign's link check in Chromium at 1366 px: the button starts a run without leaving the page, the
fragment polls while it waits for a worker and shows the results in place when they arrive.

The run is done in this process where a worker would do it (its worker side: test_link_check_worker.py),
against a real HTTP server. Served by pytest-django's live server under the strict Content-Security-Policy;
screenshots go to test-artifacts/link-checks-*.png.
"""

import pytest
from django.db import close_old_connections
from playwright.sync_api import expect

from campaigns.models import LinkCheckRun
from delivery import link_check
from tests.e2e.test_dashboard_browser import (  # noqa: F401  (pytest fixtures)
    ARTIFACTS,
    chromium,
    end_live_server_connections,
)
from tests.factories import PASSWORD, CampaignFactory, ContactFactory, ContactListFactory, MarketerFactory
from tests.http_server import http_server_factory  # noqa: F401  (pytest fixture)

pytestmark = [pytest.mark.browser, pytest.mark.redis]


@pytest.fixture
def campaign_with_links(chromium, http_server_factory, settings):
    close_old_connections()  # see test_small_counts_browser.lopsided_campaign
    settings.LINK_CHECK_COOLDOWN_SECONDS = 0
    settings.LINK_CHECK_TIMEOUT_SECONDS = 1
    server = http_server_factory()
    owner = MarketerFactory(username="links-browser")
    contact = ContactFactory(owner=owner, email="ann@example.org", attributes={"City": "Pune"})
    campaign = CampaignFactory(
        owner=owner,
        name="Spring offers for our readers in Pune and everywhere else in Maharashtra",
        lists=[ContactListFactory(owner=owner, contacts=[contact])],
        body_html=(
            f'<p><a href="{server.url("/ok")}">Our shop</a> '
            f'<a href="{server.url("/missing")}">Last year\'s offers</a> '
            f'<a href="{server.url("/chain/2")}">The spring catalogue</a> '
            f'<a href="{server.url("/slow")}">A slow partner site</a> '
            f'<a href="{server.url("/to")}?url=/stores/{{{{ City }}}}">Your nearest store</a> '
            '<a href="mailto:us@example.com">Write to us</a></p>'
        ),
    )
    return campaign, server


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_the_check_starts_in_place_polls_and_shows_its_results(live_server, chromium, campaign_with_links):
    campaign, server = campaign_with_links
    origin = live_server.url
    page = chromium.new_page(viewport={"width": 1366, "height": 800})
    violations = []
    page.on("console", lambda m: violations.append(m.text) if "Content Security Policy" in m.text else None)
    page.goto(f"{origin}/admin/login/?next=/admin/")
    page.fill("#id_username", campaign.owner.username)
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_url(f"{origin}/admin/")
    page.goto(f"{origin}/admin/campaigns/campaign/{campaign.pk}/links/")
    expect(page.locator("#link-checks")).to_contain_text("The links have not been checked yet.")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "link-checks-before.png"), full_page=True)

    page.get_by_role("button", name="Check links").click()

    expect(page.locator("#link-checks")).to_contain_text("Waiting for a worker to check the links")
    assert page.url == f"{origin}/admin/campaigns/campaign/{campaign.pk}/links/"  # no navigation
    run = LinkCheckRun.objects.get()
    link_check.run_link_check(run_id=run.pk)  # what the worker does; the page is not reloaded

    expect(page.locator("#link-checks .link-checks-summary")).to_contain_text("Checked 5 links", timeout=15_000)
    rows = page.locator(".link-checks-table tbody tr")
    expect(rows).to_have_count(5)
    expect(page.locator("tr.lc-error")).to_contain_text("The link answers 404 Not Found.")
    expect(page.locator("tr.lc-warning")).to_contain_text("No answer within 1 s: the site may be slow")
    expect(page.locator("#link-checks")).to_contain_text("checked as rendered for ann@example.org")
    assert page.locator("#link-checks").get_attribute("data-poll") is None  # done: polling stopped
    assert page.evaluate("document.documentElement.scrollWidth") <= 1366  # nothing overflows the window
    page.screenshot(path=str(ARTIFACTS / "link-checks-done.png"), full_page=True)
    assert violations == []
    page.close()
