"""The bounce mailbox on the SMTP account's page in Chromium: set up through the page, its read history
and last test shown (docs/screenshots/admin-smtp-account-bounce-mailbox.png)."""

from datetime import timedelta

import pytest
from django.db import close_old_connections
from django.utils import timezone

from sending.models import BounceMailbox
from tests.e2e.test_dashboard_browser import ARTIFACTS, chromium  # noqa: F401  (pytest fixture)
from tests.e2e.test_layout_browser import LAPTOP, log_in
from tests.factories import MarketerFactory, SmtpAccountFactory

pytestmark = [pytest.mark.browser]


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_the_mailbox_is_set_up_and_shown_on_the_accounts_page(live_server, chromium):  # noqa: F811
    close_old_connections()
    owner = MarketerFactory(username="bouncing")
    account = SmtpAccountFactory(owner=owner, name="Newsletter relay")
    page = chromium.new_page(viewport=LAPTOP)
    log_in(page, live_server.url, owner)
    url = f"{live_server.url}/admin/sending/smtpaccount/{account.pk}/change/"
    page.goto(url)
    panel = page.locator("#bounce_mailbox-0")  # the form, not the inline's hidden template
    panel.get_by_label("Host").fill("imap.example.com")
    panel.get_by_label("Username").fill("bounces@example.com")
    panel.get_by_label("Password").fill("mailbox-password")
    page.get_by_role("button", name="Save and continue editing").click()
    page.wait_for_url(url)

    mailbox = BounceMailbox.objects.get(account=account)
    assert (mailbox.host, mailbox.port, mailbox.get_password()) == ("imap.example.com", 993, "mailbox-password")
    now = timezone.now()
    BounceMailbox.objects.filter(pk=mailbox.pk).update(
        last_checked_at=now,
        processed_count=128,
        last_error="TLS certificate verification failed: certificate has expired",
        last_error_at=now - timedelta(hours=3),
        last_tested_at=now - timedelta(minutes=5),
        last_test_result="OK: Logged in; 3 message(s) waiting in INBOX.",
    )
    page.goto(url)
    panel = page.locator("#bounce_mailbox-0")
    assert "128 bounce(s) processed in all" in panel.locator(".field-reading").inner_text()
    assert "OK: Logged in; 3 message(s) waiting in INBOX." in panel.locator(".field-test_result").inner_text()
    assert "mailbox-password" not in page.content()
    assert page.get_by_role("button", name="Save and test the bounce mailbox").is_visible()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    panel.scroll_into_view_if_needed()
    page.screenshot(path=str(ARTIFACTS / "admin-smtp-account-bounce-mailbox.png"), full_page=True)
    page.close()
