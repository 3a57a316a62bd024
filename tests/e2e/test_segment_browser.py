"""A marketer builds a segment in Chromium: each condition row offers only the operators of its field and
shows only what it compares with, and the count of matching contacts follows every edit (the segment's
count view); saved, the changelist counts it. Served under the strict Content-Security-Policy (the test
fails on a violation). Screenshots go to test-artifacts/ (kept ones: docs/screenshots/segment-*.png).
"""

from datetime import timedelta

import pytest
from django.db import close_old_connections
from django.utils import timezone
from playwright.sync_api import expect

from campaigns.models import Campaign, Email, Segment
from tests.e2e.test_dashboard_browser import (  # noqa: F401  (pytest fixtures)
    ARTIFACTS,
    chromium,
    end_live_server_connections,
)
from tests.e2e.test_layout_browser import log_in
from tests.factories import CampaignFactory, ContactFactory, ContactListFactory, EmailFactory, MarketerFactory

pytestmark = [pytest.mark.browser]


@pytest.fixture
def audience(chromium):
    """Made after the browser started (the previous browser test may have ended this thread's connection)."""
    close_old_connections()
    owner = MarketerFactory(username="segment-maker")
    cities = ["Pune"] * 6 + ["Mumbai"] * 3 + ["Delhi"]
    contacts = [
        ContactFactory(owner=owner, email=f"reader{n}@example.in", attributes={"City": city, "Orders": str(n)})
        for n, city in enumerate(cities)
    ]
    ContactListFactory(owner=owner, name="Newsletter", contacts=contacts)
    campaign = CampaignFactory(owner=owner, name="Diwali offers", status=Campaign.Status.COMPLETED)
    now = timezone.now()
    for n, contact in enumerate(contacts):
        EmailFactory(
            campaign=campaign,
            contact=contact,
            status=Email.Status.SENT,
            sent_at=now - timedelta(days=5),
            first_opened_at=now - timedelta(days=4) if n % 2 == 0 else None,
        )
    return owner


def wait_for_count(page, expected):
    expect(page.locator("#segment-matching")).to_have_text(expected, timeout=10_000)


def visible_operators(page, row):
    return page.eval_on_selector_all(
        f"#id_conditions-{row}-operator option", "options => options.filter(o => !o.hidden).map(o => o.value)"
    )


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_segment_is_built_with_a_live_count(live_server, chromium, audience):
    origin = live_server.url
    page = chromium.new_page(viewport={"width": 1366, "height": 900})
    violations, count_posts = [], []
    page.on("console", lambda m: violations.append(m.text) if "Content Security Policy" in m.text else None)
    page.on("request", lambda r: count_posts.append(r.method) if r.url.endswith("/segment/count/") else None)
    log_in(page, origin, audience)

    page.goto(f"{origin}/admin/campaigns/segment/add/")
    page.fill("#id_name", "Pune readers who opened lately")
    page.select_option("#id_conditions-0-field", "attribute")
    assert visible_operators(page, 0)[:3] == ["", "equals", "not_equals"]
    assert "opened" not in visible_operators(page, 0)
    page.fill("#id_conditions-0-attribute", "City")
    page.select_option("#id_conditions-0-operator", "equals")
    page.fill("#id_conditions-0-value", "pune")
    wait_for_count(page, "6")
    assert not page.is_visible("#id_conditions-0-campaign")

    page.click("#conditions-group .add-row a")
    page.select_option("#id_conditions-1-field", "activity")
    assert visible_operators(page, 1) == ["", "opened_in_last_days", "not_opened_in_last_days"]
    assert not page.is_visible("#id_conditions-1-attribute")
    page.select_option("#id_conditions-1-operator", "opened_in_last_days")
    page.fill("#id_conditions-1-value", "30")
    wait_for_count(page, "3")  # readers 0, 2 and 4 of Pune opened; 1, 3, 5 did not

    page.click("#conditions-group .add-row a")
    page.select_option("#id_conditions-2-field", "campaign")
    assert page.is_visible("#id_conditions-2-campaign") and not page.is_visible("#id_conditions-2-value")
    page.select_option("#id_conditions-2-operator", "clicked")
    page.select_option("#id_conditions-2-campaign", label="Diwali offers")
    wait_for_count(page, "0")  # nobody clicked
    page.check("#id_match_1")  # any of the conditions
    wait_for_count(page, "8")  # Pune (6), or opened lately (also 6 and 8)

    page.fill("#id_conditions-0-value", "")
    page.wait_for_selector("#segment-count .errorlist", timeout=10_000)
    assert "Type the text to compare with." in page.inner_text("#segment-count")
    page.fill("#id_conditions-0-value", "pune")
    wait_for_count(page, "8")
    assert set(count_posts) == {"POST"}
    page.screenshot(path=str(ARTIFACTS / "segment-form.png"), full_page=True)

    page.click("input[name=_save]")
    page.wait_for_url(f"{origin}/admin/campaigns/segment/")
    segment = Segment.objects.get(owner=audience)
    assert segment.match == Segment.Match.ANY and segment.conditions.count() == 3
    row = page.inner_text("#result_list tbody tr")
    assert "Pune readers who opened lately" in row and "\t8\t8\t" in row
    page.screenshot(path=str(ARTIFACTS / "segment-changelist.png"), full_page=True)

    page.goto(f"{origin}/admin/campaigns/segment/{segment.pk}/change/")
    wait_for_count(page, "8")
    assert page.is_visible("#id_conditions-2-campaign") and not page.is_visible("#id_conditions-0-campaign")
    assert violations == []
    page.close()
