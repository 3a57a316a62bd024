"""The SMTP account's page and the dashboard in Chromium after its server throttled it: the learned
rate and why, where a marketer looks (docs/screenshots/admin-smtp-account-learned-rate.png and
dashboard-learned-rate.png)."""

import pytest
from django.db import close_old_connections
from django.utils import timezone

from tests.e2e.test_dashboard_browser import ARTIFACTS, chromium  # noqa: F401  (pytest fixture)
from tests.e2e.test_layout_browser import LAPTOP, log_in
from tests.factories import MarketerFactory, SmtpAccountFactory

pytestmark = [pytest.mark.browser]


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_the_account_page_shows_the_learned_rate(live_server, chromium):  # noqa: F811
    close_old_connections()
    owner = MarketerFactory(username="throttled")
    account = SmtpAccountFactory(
        owner=owner,
        name="Provider",
        max_per_minute=1200,
        learned_per_minute=570,
        observed_limit_per_minute=600,
        rate_changed_at=timezone.now(),
        last_throttled_at=timezone.now(),
        rate_note="Throttled (“450 4.7.1 Error: too much mail from 10.0.0.7”): the server accepted 600 in the "
        "minute before refusing; sending at 570/min.",
    )
    page = chromium.new_page(viewport=LAPTOP)
    log_in(page, live_server.url, owner)
    page.goto(f"{live_server.url}/admin/sending/smtpaccount/{account.pk}/change/")
    field = page.locator(".field-sending_rate")
    assert "570/min, learned from its server (configured maximum 1200/min" in field.inner_text()
    assert "too much mail from 10.0.0.7" in field.inner_text()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    field.scroll_into_view_if_needed()
    page.screenshot(path=str(ARTIFACTS / "admin-smtp-account-learned-rate.png"), full_page=True)
    page.goto(f"{live_server.url}/admin/sending/smtpaccount/")
    assert "Ready, at 570/min learned from its server" in page.content()
    page.goto(f"{live_server.url}/admin/")
    line = page.get_by_text("SMTP account “Provider” sends at 570/min, the rate learned from its server")
    line.wait_for()  # the dashboard's activity, filled by its first poll
    assert "(configured 1200/min). Throttled (“450 4.7.1 Error: too much mail from 10.0.0.7”)" in line.inner_text()
    page.screenshot(path=str(ARTIFACTS / "dashboard-learned-rate.png"), full_page=True)
    page.close()
