"""A visitor subscribes through a hosted subscription form in Chromium, confirms from the email that a real
SMTP server received, and ends up subscribed; the marketer sees the form's hosted URL and snippet in the admin.

Every page is served under the strict Content-Security-Policy (no inline script), and the test fails on any
policy violation. The confirmation email's Celery task runs inside the live server's request (eager_tasks):
this test is about the pages; tests/campaigns/test_subscriptions.py shows the page does not wait for it.
Screenshots of the pages go to test-artifacts/ (kept ones: docs/screenshots/).
Needs /usr/bin/chromium.
"""

import re
from urllib.parse import urlsplit

import pytest
from django.core.cache import cache
from django.utils import timezone

from contacts.models import Contact
from contacts.services import contacts
from contacts.subscriptions import embed
from sending.models import SmtpAccount
from tests.contacts.test_subscriptions import eager_tasks  # noqa: F401  (an autouse fixture)
from tests.e2e.test_dashboard_browser import ARTIFACTS, chromium, end_live_server_connections  # noqa: F401
from tests.factories import PASSWORD, ContactListFactory, MarketerFactory, SmtpAccountFactory, SubscriptionFormFactory
from tests.smtp_server import RecordingHandler, smtp_server_factory  # noqa: F401  (fixtures)

pytestmark = [pytest.mark.browser]

LINK = re.compile(r"https?://\S+/s/confirm/[^/\s]+/")


@pytest.fixture
def fresh_connection_pool():
    """The dashboard test before this one ends every other connection to the test database (its
    end_live_server_connections), and a connection it ended was still this thread's when this test began
    (seen: its backend gone from pg_stat_activity, the first query "terminating connection due to
    administrator command"). Requested last, after the database and live server are set up: start from a
    new connection and pool."""
    from django.db import connection

    if connection.pool is not None:
        connection.close()
        connection.close_pool()


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_visitor_subscribes_through_the_hosted_page_and_the_emailed_link(
    smtp_server_factory, live_server, chromium, settings, fresh_connection_pool
):
    settings.SMTP_ALLOW_PRIVATE_HOSTS = True
    settings.SMTP_CA_FILE = ""
    settings.SITE_URL = live_server.url
    cache.clear()
    server = smtp_server_factory(RecordingHandler())
    owner = MarketerFactory(username="form-owner", organization="Chai & Co")
    account = SmtpAccountFactory(
        owner=owner,
        name="Newsletter SMTP",
        host="127.0.0.1",
        port=server.port,
        security=SmtpAccount.Security.NONE,
        username="",
        raw_password="",
        from_email="hello@chai.example",
        from_name="Chai & Co",
    )
    contact_list = ContactListFactory(owner=owner, name="Monthly letter")
    form = SubscriptionFormFactory(
        owner=owner,
        contact_list=contact_list,
        smtp_account=account,
        title="The monthly chai letter",
        attributes_asked=["City"],
        consent_text="I agree to receive the monthly chai letter by email. I can unsubscribe at any time.",
    )

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page = chromium.new_page(viewport={"width": 900, "height": 800})
    violations = []
    page.on("console", lambda m: violations.append(m.text) if "Content Security Policy" in m.text else None)

    page.goto(embed.hosted_url(form=form))
    assert page.inner_text("h1") == "The monthly chai letter"
    trap = page.locator("#id_website").bounding_box()
    assert trap is None or trap["x"] + trap["width"] <= 0  # the honeypot is off-screen for people
    page.fill("#id_email", "meera@localhost")
    page.fill("#id_name", "Meera")
    page.fill("#id_attr_City", "Bengaluru")
    page.click("button[type=submit]")
    page.wait_for_selector(".errorlist")
    assert "the domain has no dot" in page.inner_text(".errorlist")
    assert page.input_value("#id_name") == "Meera" and page.input_value("#id_attr_City") == "Bengaluru"
    page.screenshot(path=str(ARTIFACTS / "subscription-error.png"), full_page=True)
    page.fill("#id_email", "meera@example.in")
    page.screenshot(path=str(ARTIFACTS / "subscription-page.png"), full_page=True)
    page.click("button[type=submit]")
    page.wait_for_selector("text=Check your inbox")
    page.screenshot(path=str(ARTIFACTS / "subscription-check-inbox.png"), full_page=True)
    assert not Contact.objects.filter(email="meera@example.in").exists()

    server.handler.wait_for(lambda h: len(h.messages) == 1, timeout=10)
    message = server.handler.messages[0]
    assert message.rcpt_tos == ["meera@example.in"]
    link = LINK.search(message.parsed().get_body(("plain",)).get_content()).group(0)
    assert urlsplit(link).netloc == urlsplit(live_server.url).netloc

    page.goto(link)
    page.wait_for_selector("#confirm-button")
    page.screenshot(path=str(ARTIFACTS / "subscription-confirm.png"), full_page=True)
    page.click("#confirm-button")
    page.wait_for_selector("text=You are subscribed")
    assert "meera@example.in" in page.inner_text("main")
    page.screenshot(path=str(ARTIFACTS / "subscription-confirmed.png"), full_page=True)
    contact = Contact.objects.get(owner=owner, email="meera@example.in")
    assert contact.status == Contact.Status.SUBSCRIBED
    assert contact.attributes == {"City": "Bengaluru"} and contact.consent_form_id == form.pk
    assert list(contact_list.contacts.all()) == [contact]

    # Unsubscribed later, then back on a single opt-in form: the page anyone gets, and no resubscription; a
    # known address is mailed a link instead, which the once-an-hour rule holds back (one went out minutes ago).
    contacts.suppress(contact_ids=[contact.pk], status=Contact.Status.UNSUBSCRIBED, now=timezone.now())
    form.double_opt_in = False
    form.save()
    page.goto(embed.hosted_url(form=form))
    page.fill("#id_email", "meera@example.in")
    page.click("button[type=submit]")
    page.wait_for_selector("text=Thank you for signing up")
    page.screenshot(path=str(ARTIFACTS / "subscription-thanks.png"), full_page=True)
    assert Contact.objects.get(pk=contact.pk).status == Contact.Status.UNSUBSCRIBED
    assert len(server.handler.messages) == 1

    # The marketer's side: the form's page in the admin, with the hosted URL and the snippet.
    admin = chromium.new_page(viewport={"width": 1300, "height": 1200})
    admin.on("console", lambda m: violations.append(m.text) if "Content Security Policy" in m.text else None)
    admin.goto(f"{live_server.url}/admin/login/?next=/admin/")
    admin.fill("#id_username", owner.username)
    admin.fill("#id_password", PASSWORD)
    admin.click("input[type=submit]")
    admin.wait_for_url(f"{live_server.url}/admin/")
    admin.goto(f"{live_server.url}/admin/contacts/subscriptionform/{form.pk}/change/")
    snippet = admin.input_value("#embed-snippet")
    assert snippet == embed.snippet_html(form=form)
    assert admin.locator(f"a[href='{embed.hosted_url(form=form)}']").count() == 1
    admin.screenshot(path=str(ARTIFACTS / "subscription-form-admin.png"), full_page=True)

    assert violations == []
    page.close()
    admin.close()
