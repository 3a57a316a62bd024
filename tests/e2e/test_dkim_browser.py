"""The SMTP account page's DKIM panel in Chromium: a key generated, its record checked against a real
DNS server (tests.dns_server) and signing turned on (docs/screenshots/admin-smtp-account-dkim.png)."""

import pytest
from django.db import close_old_connections

from sending import dkim
from tests.dns_server import dns_server  # noqa: F401  (pytest fixture)
from tests.e2e.test_dashboard_browser import ARTIFACTS, chromium  # noqa: F401  (pytest fixture)
from tests.e2e.test_layout_browser import LAPTOP, log_in
from tests.factories import MarketerFactory, SmtpAccountFactory

pytestmark = [pytest.mark.browser]


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_the_dkim_panel_generates_checks_and_turns_on_signing(live_server, chromium, dns_server, settings):  # noqa: F811
    settings.DKIM_DNS_NAMESERVERS, settings.DKIM_DNS_PORT = ["127.0.0.1"], dns_server.port
    close_old_connections()
    owner = MarketerFactory(username="signer")
    account = SmtpAccountFactory(owner=owner, name="Newsletter", from_email="news@mail.alice.example")
    page = chromium.new_page(viewport=LAPTOP)
    log_in(page, live_server.url, owner)
    page.goto(f"{live_server.url}/admin/sending/smtpaccount/{account.pk}/change/")
    panel = page.locator("#dkim")
    assert "No key yet." in panel.inner_text()

    page.fill("#id_dkim-domain", "alice.example")
    page.fill("#id_dkim-selector", "mail2026")
    panel.get_by_role("button", name="Generate the key").click()
    page.wait_for_load_state()
    assert "New DKIM key made" in page.locator(".messagelist").inner_text()
    account.refresh_from_db()
    record = dkim.dkim_record(account)
    assert page.locator("#dkim-record-name").inner_text() == "mail2026._domainkey.alice.example"
    assert page.locator("#dkim-record-value").inner_text() == record.value

    dns_server.txt[record.name] = [record.value]
    panel.get_by_role("button", name="Check DNS").click()
    page.wait_for_load_state()
    assert "DKIM record matches" in page.locator(".messagelist").inner_text()
    panel.get_by_role("button", name="Turn signing on").click()
    page.wait_for_load_state()
    assert "Signing on:" in page.locator("#dkim").inner_text()
    page.get_by_role("button", name="Check DNS").click()
    page.wait_for_load_state()

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.locator("#dkim").scroll_into_view_if_needed()
    page.screenshot(path=str(ARTIFACTS / "admin-smtp-account-dkim.png"), full_page=True)
    page.close()
