"""The dashboard and a campaign's analytics page in Chromium, live while a real worker sends.

A Celery worker and beat (subprocesses, as in production) send a campaign at
120 a minute to an aiosmtpd server in this process; Chromium (Debian's, driven by
Playwright) logs in as the marketer through pytest-django's live server, sees the
charts drawn, and sees the Sent figures and the progress bar move without any reload.
Every page is served under the strict Content-Security-Policy, and the test fails on
any policy violation or any request to another origin. Screenshots of both pages go
to test-artifacts/.

Select with `-m e2e`; needs DATABASE_URL (PostgreSQL), REDIS_URL and /usr/bin/chromium.
"""

import io
import os
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from django.conf import settings
from django.core.management import call_command
from django.utils import timezone
from playwright.sync_api import expect

from campaigns.models import Campaign, Email
from campaigns.services import lifecycle
from contacts.models import Contact
from sending.models import SmtpAccount
from tests.conftest import need_service
from tests.e2e.test_worker_sends_campaign import (  # noqa: F401  (pytest fixtures)
    celery_cluster,
    e2e_broker_url,
    quiet_smtp_log,
)
from tests.factories import (
    PASSWORD,
    CampaignFactory,
    ContactFactory,
    ContactListFactory,
    MarketerFactory,
    SmtpAccountFactory,
)
from tests.smtp_server import RecordingHandler, smtp_server_factory  # noqa: F401  (fixtures)

pytestmark = [pytest.mark.e2e, pytest.mark.browser, pytest.mark.redis]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
RECIPIENTS = 80
PER_MINUTE = 120
ARTIFACTS = Path(os.environ.get("TEST_ARTIFACTS_DIR", settings.BASE_DIR / "test-artifacts"))
# A blank canvas has no opaque pixel; a drawn chart has many.
CANVAS_IS_DRAWN = """(c) => {
  if (!c.width || !c.height) return false;
  const data = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
  let painted = 0;
  for (let i = 3; i < data.length; i += 4) { if (data[i] > 0) painted++; }
  return painted > 100;
}"""


def wait_until_drawn(canvas, *, timeout):
    """Polls the canvas's pixels from the test, one evaluation a look: Playwright has no expectation for
    pixels, and page.wait_for_function polls inside the page with eval, which the pages'
    Content-Security-Policy (no 'unsafe-eval') may refuse."""
    deadline = time.monotonic() + timeout
    while not canvas.evaluate(CANVAS_IS_DRAWN):
        if time.monotonic() > deadline:
            pytest.fail(f"{canvas} not drawn within {timeout}s")
        canvas.page.wait_for_timeout(100)


def expect_figure_to_grow(figure, before_text, *, timeout_ms):
    """Waits until the figure's text is no longer `before_text`, then checks that it grew."""
    expect(figure).not_to_have_text(before_text, timeout=timeout_ms)
    assert number(figure.inner_text()) > number(before_text)


SET_HIDDEN = """(hidden) => {
  Object.defineProperty(document, 'hidden', { configurable: true, get: () => hidden });
  document.dispatchEvent(new Event('visibilitychange'));
}"""


@pytest.fixture
def chromium(monkeypatch):
    if not os.path.exists(CHROMIUM):
        need_service(f"Chromium: {CHROMIUM} is missing (apt-get install chromium)")
    # Playwright's sync API keeps an event loop running in this thread; the test's own ORM
    # calls are plain synchronous code all the same.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "1")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield browser
        finally:
            browser.close()


def sent_count(campaign_id):
    return Email.objects.filter(campaign_id=campaign_id, status=Email.Status.SENT).count()


def number(text):
    return int(text.replace(",", "").replace("\u202f", "").strip() or 0)


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_dashboard_and_analytics_update_live_while_a_worker_sends(
    quiet_smtp_log, smtp_server_factory, celery_cluster, live_server, chromium, settings
):
    settings.DISPATCH_INTERVAL_SECONDS = 1
    handler = RecordingHandler()
    server = smtp_server_factory(handler)
    owner = MarketerFactory(username="live-marketer")
    account = SmtpAccountFactory(
        owner=owner,
        name="Live SMTP",
        host="localhost",
        port=server.port,
        security=SmtpAccount.Security.NONE,
        username="",
        raw_password="",
        max_per_minute=PER_MINUTE,
        max_per_hour=10_000,
        max_per_day=10_000,
        batch_size=10,
    )
    contacts = Contact.objects.bulk_create(ContactFactory.build_batch(RECIPIENTS, owner=owner))
    campaign = CampaignFactory(
        owner=owner,
        name="Spring launch",
        smtp_account=account,
        lists=[ContactListFactory(owner=owner, contacts=contacts)],
    )
    call_command("setup_schedules", stdout=io.StringIO())
    lifecycle.schedule(campaign=campaign, at=timezone.now())
    celery_cluster.start()
    celery_cluster.wait_for(
        lambda: sent_count(campaign.pk) >= 2,
        timeout=60,
        describe=lambda: f"campaign {Campaign.objects.get(pk=campaign.pk).status}, sent {sent_count(campaign.pk)}",
    )

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    origin = live_server.url
    page = chromium.new_page(viewport={"width": 1400, "height": 1100})
    violations, foreign = [], []
    page.on("console", lambda m: violations.append(m.text) if "Content Security Policy" in m.text else None)
    page.on(
        "request",
        lambda r: (
            foreign.append(r.url)
            if urlsplit(r.url).netloc and urlsplit(r.url).netloc != urlsplit(origin).netloc
            else None
        ),
    )

    page.goto(f"{origin}/admin/login/?next=/admin/")
    page.fill("#id_username", owner.username)
    page.fill("#id_password", PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_url(f"{origin}/admin/")

    # The dashboard: figures loaded, the chart drawn, the plane flying, Sent advancing by itself.
    page.wait_for_selector("#live-dashboard[data-loaded='1']", timeout=15_000)
    wait_until_drawn(page.locator("#timeline-chart"), timeout=10)
    assert "active" in page.get_attribute("#sending-indicator", "class")
    assert "Spring launch" in page.inner_text("#sending-text")
    assert page.locator("#content-main .app-campaigns").count() == 1  # the admin's app list stays
    card_sent = page.locator("#card-sent")
    expect_figure_to_grow(card_sent, card_sent.inner_text(), timeout_ms=20_000)
    page.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)

    # The campaign's analytics page, reached from the dashboard's top campaigns link.
    page.goto(f"{origin}/admin/campaigns/campaign/{campaign.pk}/analytics/")
    page.wait_for_selector("#campaign-analytics[data-loaded='1']", timeout=15_000)
    wait_until_drawn(page.locator("#status-chart"), timeout=10)
    page.wait_for_selector("#breakdown-rows tr[data-figure='sent']", timeout=10_000)
    count_sent, progress_bar = page.locator("#count-sent"), page.locator("#progress-bar")
    sent_before = count_sent.inner_text()
    progress_before = float(progress_bar.get_attribute("value") or 0)
    navigations = []
    page.on("framenavigated", lambda frame: navigations.append(frame.url))
    expect_figure_to_grow(count_sent, sent_before, timeout_ms=20_000)
    expect(progress_bar).not_to_have_js_property("value", progress_before, timeout=20_000)
    assert float(progress_bar.get_attribute("value")) > progress_before
    assert navigations == []  # advanced without reloading
    assert page.locator("#recipient-rows tr").count() >= 2
    assert "at least" in page.inner_text("#progress-eta") or sent_count(campaign.pk) == RECIPIENTS
    page.screenshot(path=str(ARTIFACTS / "campaign-analytics.png"), full_page=True)

    # A hidden tab stops polling; shown again, it polls at once. (Absence can only be watched for a while:
    # two and a half polling intervals.)
    polls = []
    page.on("request", lambda r: polls.append(r.url) if "/analytics/data/" in r.url else None)
    page.evaluate(SET_HIDDEN, True)
    page.wait_for_timeout(500)  # a poll already in flight may still land
    quiet_from = len(polls)
    page.wait_for_timeout(5_000)
    assert len(polls) == quiet_from
    with page.expect_request(lambda r: "/analytics/data/" in r.url, timeout=5_000):
        page.evaluate(SET_HIDDEN, False)

    assert violations == []
    assert foreign == []
    page.close()
    celery_cluster.stop()


@pytest.fixture(autouse=True)
def end_live_server_connections():
    """The live server's request threads each leave a connection pool behind: end their connections, or
    the test database cannot be dropped. That ends this thread's idle pooled connections too, so its
    pool is closed as well (the next test opens a fresh one)."""
    yield
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
    connection.close()
    if connection.pool is not None:
        connection.close_pool()
