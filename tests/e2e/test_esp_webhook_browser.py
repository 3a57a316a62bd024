"""The SMTP account's page in Chromium with an ESP chosen: the webhook panel's URL and setup steps
(docs/screenshots/admin-smtp-account-esp-webhook.png)."""

import pytest
from django.db import close_old_connections

from sending import esp_webhooks
from tests.e2e.test_dashboard_browser import ARTIFACTS, chromium  # noqa: F401  (pytest fixture)
from tests.e2e.test_layout_browser import LAPTOP, log_in
from tests.factories import MarketerFactory, SmtpAccountFactory

pytestmark = [pytest.mark.browser]


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_the_account_page_shows_the_esp_webhook_panel(live_server, chromium):  # noqa: F811
    close_old_connections()
    owner = MarketerFactory(username="relayed")
    account = SmtpAccountFactory(owner=owner, name="Mailgun relay", host="smtp.mailgun.org", esp="mailgun")
    webhook = esp_webhooks.configure(account=account, signing_key="key-0123456789abcdef")
    page = chromium.new_page(viewport=LAPTOP)
    log_in(page, live_server.url, owner)
    page.goto(f"{live_server.url}/admin/sending/smtpaccount/{account.pk}/change/")
    panel = page.locator(".field-esp_webhook_panel")
    assert esp_webhooks.webhook_url(webhook) in panel.inner_text()
    assert "HTTP webhook signing key: stored" in panel.inner_text()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    panel.scroll_into_view_if_needed()
    page.screenshot(path=str(ARTIFACTS / "admin-smtp-account-esp-webhook.png"))
    page.close()
