"""The admin's own pages in Chromium at a laptop's width (1366 px): wide changelists stay inside the page, and the
schedule field in a browser set to another time zone.

Served by pytest-django's live server under the strict Content-Security-Policy. Screenshots go to
test-artifacts/.
"""

import pytest
from django.db import close_old_connections
from django.utils import timezone

from campaigns.models import Email
from tests.e2e.test_dashboard_browser import (  # noqa: F401  (pytest fixtures)
    ARTIFACTS,
    chromium,
    end_live_server_connections,
)
from tests.factories import PASSWORD, CampaignFactory, ContactFactory, ContactListFactory, EmailFactory, MarketerFactory

pytestmark = [pytest.mark.browser]

LAPTOP = {"width": 1366, "height": 768}
LONG_NAMES = [
    "Spring 2026 collection launch for every subscriber in the European and Asian markets, second wave",
    "Quarterly newsletter: product updates, customer stories, upcoming webinars and the partner programme",
    "Black Friday early access for loyalty members who bought twice or more in the last twelve months",
]
LONG_RESPONSE = (
    "452 4.2.2 The email account that you tried to reach is over quota. Please direct the recipient to support"
)
PAGE_OVERFLOW = "() => document.documentElement.scrollWidth - window.innerWidth"
# Django lets a too-wide table scroll inside its box: the columns on the right are then out of sight.
TABLE_OVERFLOW = """() => {
  const box = document.querySelector('#changelist-form .results');
  return box.scrollWidth - box.clientWidth;
}"""


def log_in(page, origin, user):
    page.goto(f"{origin}/admin/login/?next=/admin/")
    page.fill("#id_username", user.username)
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_url(f"{origin}/admin/")


@pytest.fixture
def wide_lists(chromium):
    """A marketer whose campaigns, emails and contacts have long names; made after the browser started (see
    test_small_counts_browser: the previous browser test may have ended this thread's connection)."""
    close_old_connections()
    owner = MarketerFactory(username="wide-lists")
    contacts = [
        ContactFactory(
            owner=owner,
            email=f"a.very.long.address.for.recipient.number.{i}@subsidiary.example-corp.org",
            name=f"Recipient with a rather long display name {i}",
        )
        for i in range(3)
    ]
    contact_list = ContactListFactory(
        owner=owner, name="Customers who opted in at the 2026 trade fair in Frankfurt", contacts=contacts
    )
    for name in LONG_NAMES:
        campaign = CampaignFactory(
            owner=owner, name=name, lists=[contact_list], scheduled_at=timezone.now(), started_at=timezone.now()
        )
        for contact in contacts:
            EmailFactory(
                campaign=campaign,
                contact=contact,
                status=Email.Status.DEFERRED,
                attempts=2,
                smtp_code=452,
                smtp_response=LONG_RESPONSE,
                sent_at=timezone.now(),
            )
    return owner


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_wide_changelists_fit_a_1366_px_window(live_server, chromium, wide_lists):
    origin = live_server.url
    page = chromium.new_page(viewport=LAPTOP)
    violations = []
    page.on("console", lambda m: violations.append(m.text) if "Content Security Policy" in m.text else None)
    log_in(page, origin, wide_lists)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)

    overflow = {}
    for app, model in (("campaigns", "campaign"), ("campaigns", "email"), ("contacts", "contact")):
        page.goto(f"{origin}/admin/{app}/{model}/")
        page.wait_for_selector("#result_list")
        page.screenshot(path=str(ARTIFACTS / f"changelist-{model}-1366.png"))
        overflow[model] = (page.evaluate(PAGE_OVERFLOW), page.evaluate(TABLE_OVERFLOW))

    assert overflow == {"campaign": (0, 0), "email": (0, 0), "contact": (0, 0)}
    assert not violations
