"""Every admin page issue 26 changed, in Chromium at a laptop's 1366x800 (and at 1920x1080): nothing passes the window's right edge,
no table is wider than its box, and no column title breaks inside a word ("SEN/T").

To check another page, add a `Page` to PAGES: its name, and a function from the `Seeded` data to its path.
Screenshots go to test-artifacts/overflow/.
"""

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from django.db import close_old_connections
from django.utils import timezone

from campaigns.models import Campaign, Email
from tests.e2e.test_dashboard_browser import (  # noqa: F401  (pytest fixtures)
    ARTIFACTS,
    chromium,
    end_live_server_connections,
)
from tests.e2e.test_layout_browser import LONG_NAMES, log_in
from tests.factories import (
    CampaignFactory,
    ContactFactory,
    ContactListFactory,
    EmailFactory,
    MarketerFactory,
    SmtpAccountFactory,
)

pytestmark = [pytest.mark.browser]

LAPTOP = {"width": 1366, "height": 800}
# A wide screen too: there the changelist's filter column is back beside the list.
VIEWPORTS = (LAPTOP, {"width": 1920, "height": 1080})


@dataclass
class Seeded:
    """What the pages show: a marketer's long-named campaigns, contacts with attributes, SMTP accounts."""

    owner: object
    campaign: Campaign
    draft: Campaign
    contact: object
    contact_list: object
    account: object


@dataclass(frozen=True)
class Page:
    name: str
    path: Callable[[Seeded], str]
    anonymous: bool = False


PAGES = [
    Page("dashboard", lambda s: "/admin/"),
    Page("campaigns", lambda s: "/admin/campaigns/campaign/"),
    Page("campaign", lambda s: f"/admin/campaigns/campaign/{s.campaign.pk}/change/"),
    Page("campaign-draft", lambda s: f"/admin/campaigns/campaign/{s.draft.pk}/change/"),
    Page("campaign-add", lambda s: "/admin/campaigns/campaign/add/"),
    Page("analytics", lambda s: f"/admin/campaigns/campaign/{s.campaign.pk}/analytics/"),
    Page("contacts", lambda s: "/admin/contacts/contact/"),
    Page("contact", lambda s: f"/admin/contacts/contact/{s.contact.pk}/change/"),
    Page("lists", lambda s: "/admin/contacts/contactlist/"),
    Page("list", lambda s: f"/admin/contacts/contactlist/{s.contact_list.pk}/change/"),
    Page("smtp-accounts", lambda s: "/admin/sending/smtpaccount/"),
    Page("smtp-account", lambda s: f"/admin/sending/smtpaccount/{s.account.pk}/change/"),
    Page("import", lambda s: "/admin/contacts/importjob/add/"),
    Page("profile", lambda s: "/accounts/profile/"),
    Page("signup", lambda s: "/accounts/signup/", anonymous=True),
]

# What passes the right edge: the page itself, and each table wider than the box it sits in (Django lets a
# changelist's table scroll inside its box, its right-hand columns then out of sight).
OVERFLOWS = """() => {
  const found = [];
  const page = document.scrollingElement.scrollWidth - window.innerWidth;
  if (page > 0) found.push(`the page by ${page}px`);
  document.querySelectorAll('table').forEach((table) => {
    const box = table.parentElement;
    const wider = Math.round(table.getBoundingClientRect().width - box.clientWidth);
    if (wider > 1 && box.clientWidth > 0) found.push(`table ${table.id || table.className || '?'} by ${wider}px`);
  });
  return found;
}"""
# A column title (a header cell: a row's own th may break a long address on purpose) on more lines than it has
# words was broken inside one ("SEN/T", "OPE/N/RATE").
BROKEN_TITLES = """() => {
  const found = [];
  document.querySelectorAll('thead th').forEach((th) => {
    const words = th.textContent.trim().split(/\\s+/).filter(Boolean).length;
    if (!words || !th.getClientRects().length) return;
    // The lines its text runs on: the tops of its text's boxes, a few pixels apart counted as one line.
    const tops = [];
    const walker = document.createTreeWalker(th, NodeFilter.SHOW_TEXT);
    for (let node = walker.nextNode(); node; node = walker.nextNode()) {
      if (!node.textContent.trim()) continue;
      const range = document.createRange();
      range.selectNodeContents(node);
      for (const r of range.getClientRects()) {
        if (r.width && !tops.some((top) => Math.abs(top - r.top) < 4)) tops.push(r.top);
      }
    }
    if (tops.length > words) found.push(`${th.textContent.trim()}: ${tops.length} lines`);
  });
  return found;
}"""


@pytest.fixture
def seeded(chromium):
    """Made after the browser started (see test_small_counts_browser)."""
    close_old_connections()
    owner = MarketerFactory(username="overflow", timezone="Asia/Kolkata")
    account = SmtpAccountFactory(
        owner=owner,
        name="Office relay of the Frankfurt subsidiary, second floor",
        unreachable_since=timezone.now(),
        last_connection_error="[Errno 111] Connection refused",
    )
    SmtpAccountFactory(owner=owner, name="Amazon SES eu-west-1", paused_until=timezone.now() + dt.timedelta(hours=1))
    contacts = [
        ContactFactory(
            owner=owner,
            email=f"a.very.long.address.for.recipient.number.{i}@subsidiary.example-corp.org",
            name=f"Recipient with a rather long display name {i}",
            attributes={"City": "Köln", "Company": "Acme Handelsgesellschaft mbH & Co. KG"},
        )
        for i in range(4)
    ]
    contact_list = ContactListFactory(
        owner=owner, name="Customers who opted in at the 2026 trade fair in Frankfurt", contacts=contacts
    )
    ContactListFactory(owner=owner, name="Newsletter", contacts=contacts[:2])
    campaigns = [
        CampaignFactory(
            owner=owner,
            name=name,
            smtp_account=account,
            lists=[contact_list],
            status=Campaign.Status.SENDING,
            scheduled_at=timezone.now(),
            started_at=timezone.now(),
        )
        for name in LONG_NAMES
    ]
    for campaign in campaigns:
        for n, contact in enumerate(contacts):
            EmailFactory(
                campaign=campaign,
                contact=contact,
                status=Email.Status.SENT if n % 2 else Email.Status.PENDING,
                sent_at=timezone.now() if n % 2 else None,
                smtp_code=250 if n % 2 else None,
                smtp_response="250 2.0.0 Ok: queued as 4XyZ1234567 at the Frankfurt relay" if n % 2 else "",
            )
    draft = CampaignFactory(owner=owner, name=LONG_NAMES[0] + " (copy)", smtp_account=account, lists=[contact_list])
    return Seeded(
        owner=owner, campaign=campaigns[0], draft=draft, contact=contacts[0], contact_list=contact_list, account=account
    )


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_no_page_changed_in_issue_26_overflows_a_1366_px_window(live_server, chromium, seeded):
    origin = live_server.url
    folder = ARTIFACTS / "overflow"
    folder.mkdir(parents=True, exist_ok=True)

    problems = {}
    for viewport in VIEWPORTS:
        signed_in = chromium.new_context(viewport=viewport)
        log_in(signed_in.new_page(), origin, seeded.owner)
        anonymous = chromium.new_context(viewport=viewport)
        for page_spec in PAGES:
            page = (anonymous if page_spec.anonymous else signed_in).new_page()
            response = page.goto(origin + page_spec.path(seeded))
            assert response is not None and response.status == 200, page_spec.name
            if page.locator(".live-dashboard").count():
                # The dashboard's and analytics' script marks its first drawing.
                page.wait_for_selector(".live-dashboard[data-loaded='1']")
            found = page.evaluate(OVERFLOWS) + page.evaluate(BROKEN_TITLES)
            page.screenshot(path=str(folder / f"{page_spec.name}-{viewport['width']}.png"), full_page=True)
            if found:
                problems[f"{page_spec.name} at {viewport['width']} px"] = found
            page.close()
        signed_in.close()
        anonymous.close()

    assert not problems, "\n".join(f"{name}: {', '.join(found)}" for name, found in problems.items())


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_the_contact_pages_buttons_leave_its_heading_clear_and_the_status_filter_shows_every_choice(
    live_server, chromium, seeded
):
    origin = live_server.url
    page = chromium.new_context(viewport=LAPTOP).new_page()
    log_in(page, origin, seeded.owner)

    page.goto(f"{origin}/admin/contacts/contact/{seeded.contact.pk}/change/")
    heading = page.locator("#content > h2").bounding_box()
    for button in page.locator(".object-tools a").all():
        box = button.bounding_box()
        overlaps = not (
            box["x"] + box["width"] <= heading["x"]
            or heading["x"] + heading["width"] <= box["x"]
            or box["y"] + box["height"] <= heading["y"]
            or heading["y"] + heading["height"] <= box["y"]
        )
        assert not overlaps, button.inner_text()

    page.goto(f"{origin}/admin/campaigns/campaign/")
    choices = page.locator("#changelist-filter details").first.locator("ul")
    assert choices.evaluate("(ul) => ul.scrollHeight - ul.clientHeight") <= 0
    assert choices.locator("li", has_text="Cancelled").is_visible()


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_long_campaign_names_are_whole_or_cut_with_their_title(live_server, chromium, seeded):
    origin = live_server.url
    page = chromium.new_context(viewport=LAPTOP).new_page()
    log_in(page, origin, seeded.owner)
    page.wait_for_selector("#top-campaigns a")

    for link in page.locator("#top-campaigns a").all():
        cut = link.evaluate("(a) => a.scrollWidth > a.clientWidth")
        assert not cut or link.get_attribute("title") in LONG_NAMES


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_analytics_show_what_blocks_a_send_and_nothing_when_nothing_does(live_server, chromium, seeded):
    origin = live_server.url
    page = chromium.new_context(viewport=LAPTOP).new_page()
    log_in(page, origin, seeded.owner)
    healthy = CampaignFactory(
        owner=seeded.owner,
        name="Healthy",
        smtp_account=SmtpAccountFactory(owner=seeded.owner, name="Healthy relay"),
        status=Campaign.Status.SENDING,
        started_at=timezone.now(),
    )

    page.goto(f"{origin}/admin/campaigns/campaign/{seeded.campaign.pk}/analytics/")
    page.wait_for_selector(".live-dashboard[data-loaded='1']")
    assert "cannot reach its server since" in page.locator("#sending-blocked").inner_text()

    page.goto(f"{origin}/admin/campaigns/campaign/{healthy.pk}/analytics/")
    page.wait_for_selector(".live-dashboard[data-loaded='1']")
    assert page.locator("#sending-blocked").is_hidden()
