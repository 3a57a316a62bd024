"""Preview for a chosen contact, test sends through the campaign's account, templates <-> campaigns."""

import html
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from campaigns.models import Campaign, Email, EmailTemplate
from campaigns.selectors import previews as preview_selectors
from delivery import tasks
from tests.conftest import queued_tasks
from tests.factories import CampaignFactory, ContactFactory, ContactListFactory, EmailTemplateFactory
from tracking.models import Event, Link

BODY = '<p>Hello {{ name }} from {{ City }}</p><p><a href="https://shop.example.com/">Shop</a></p>'


@pytest.fixture
def setup(engine, marketer):
    asha = ContactFactory(owner=marketer, email="asha@example.in", name="Asha", attributes={"City": "Pune <3>"})
    ravi = ContactFactory(owner=marketer, email="ravi@example.in", name="Ravi", attributes={"City": "Delhi"})
    contact_list = ContactListFactory(owner=marketer, contacts=[asha, ravi])
    campaign = engine.campaign(contact_list, subject="Namaste {{ name }} ✓", body_html=BODY)
    return engine, campaign, asha, ravi


def preview_url(campaign):
    return f"/admin/campaigns/campaign/{campaign.pk}/preview/"


def test_the_preview_renders_subject_html_in_a_sandboxed_iframe_and_the_text_part(marketer_client, setup):
    _, campaign, asha, ravi = setup
    response = marketer_client.get(preview_url(campaign) + f"?contact={ravi.pk}")
    assert response.status_code == 200
    body = response.content.decode()
    assert "Namaste Ravi ✓" in body
    assert '<iframe class="preview-frame" id="preview-html" sandbox=""' in body
    srcdoc = html.unescape(body.split('srcdoc="', 1)[1].split('"', 1)[0])
    assert "Hello Ravi from Delhi" in srcdoc and "You receive this email from" in srcdoc
    assert 'href="https://shop.example.com/"' in srcdoc, "a preview is never tracked"
    assert "Shop (https://shop.example.com/)" in body  # the text part
    assert not Link.objects.exists()

    first = marketer_client.get(preview_url(campaign)).content.decode()
    assert "Namaste Asha ✓" in first
    # A contact value arrives escaped inside the iframe's document.
    srcdoc = html.unescape(first.split('srcdoc="', 1)[1].split('"', 1)[0])
    assert "Pune &lt;3&gt;" in srcdoc


def test_another_marketers_campaign_preview_is_404(other_client, setup):
    _, campaign, _, _ = setup
    assert other_client.get(preview_url(campaign)).status_code == 404
    assert other_client.post(preview_url(campaign), {"addresses": "x@example.org"}).status_code == 404


def test_another_owners_contact_cannot_be_previewed(marketer_client, setup, other_marketer):
    _, campaign, _, _ = setup
    stranger = ContactFactory(owner=other_marketer, name="Stranger", email="s@example.org")
    body = marketer_client.get(preview_url(campaign) + f"?contact={stranger.pk}").content.decode()
    assert "Stranger" not in body and "Namaste Asha" in body


def test_a_test_send_goes_through_the_campaigns_account_marked_test_and_is_not_recorded(marketer, setup):
    engine, campaign, asha, _ = setup
    client = Client(enforce_csrf_checks=True)
    client.force_login(marketer)
    page = client.get(preview_url(campaign) + f"?contact={asha.pk}")
    token = page.context["csrf_token"]
    response = client.post(
        preview_url(campaign),
        {"addresses": "me@example.com, boss@example.com", "contact": asha.pk, "csrfmiddlewaretoken": str(token)},
        follow=True,
    )
    assert response.status_code == 200
    assert [str(m) for m in response.context["messages"]] == [
        "Sending the test to me@example.com, boss@example.com… Its result shows here when it is done."
    ]
    # The request never went near the server: a worker sends the test.
    assert engine.handler.connections == 0 and engine.handler.messages == []
    page = response.content.decode()
    assert "Sending the test to me@example.com, boss@example.com…" in page
    assert '<meta http-equiv="refresh" content="3">' in page  # it reloads until the outcome is in

    run_queued_test_send(campaign)  # what the worker does

    page = client.get(preview_url(campaign)).content.decode()
    assert "Test sent to me@example.com, boss@example.com." in page and 'http-equiv="refresh"' not in page
    engine.handler.wait_for(lambda h: len(h.messages) == 2)
    assert sorted(engine.handler.delivered_to()) == ["boss@example.com", "me@example.com"]
    parsed = engine.handler.messages[0].parsed()
    assert str(parsed["Subject"]) == "[TEST] Namaste Asha ✓"
    assert engine.handler.messages[0].mail_from == engine.account.from_email
    assert parsed.get_content_type() == "multipart/alternative"
    assert "Hello Asha from Pune" in parsed.get_body(("plain",)).get_content()
    assert not Email.objects.exists() and not Link.objects.exists() and not Event.objects.exists()


def run_queued_test_send(campaign):
    """The worker's part of the campaign's last test send, in this process."""
    tasks.send_test(campaign.test_sends.get(started_at__isnull=True).pk)


def test_a_test_sends_refusals_show_on_the_page_with_the_servers_words(marketer_client, setup):
    engine, campaign, _, _ = setup
    engine.handler.rcpt_replies["gone@example.org"] = (550, "5.1.1 User unknown")

    marketer_client.post(preview_url(campaign), {"addresses": "me@example.com, gone@example.org"})
    run_queued_test_send(campaign)

    page = marketer_client.get(preview_url(campaign)).content.decode()
    assert "Test sent to me@example.com." in page
    assert "Test to gone@example.org refused: 550 5.1.1 User unknown" in page


def test_a_test_that_cannot_connect_says_why_on_the_page(marketer_client, setup):
    engine, campaign, _, _ = setup
    engine.server.stop()  # nothing listens there any more

    marketer_client.post(preview_url(campaign), {"addresses": "me@example.com"})
    run_queued_test_send(campaign)

    page = marketer_client.get(preview_url(campaign)).content.decode()
    assert "Test not sent: Could not send through the SMTP server: Cannot connect to" in page


def test_one_test_at_a_time_per_campaign(marketer_client, setup):
    engine, campaign, _, _ = setup
    marketer_client.post(preview_url(campaign), {"addresses": "me@example.com"}, follow=True)

    response = marketer_client.post(preview_url(campaign), {"addresses": "boss@example.com"}, follow=True)

    assert [str(m) for m in response.context["messages"]] == [
        "Test not sent: A test of this campaign is still being sent: wait for its result."
    ]
    assert campaign.test_sends.count() == 1


def test_a_redelivered_test_send_task_sends_nothing_twice(marketer_client, setup):
    engine, campaign, _, _ = setup
    marketer_client.post(preview_url(campaign), {"addresses": "me@example.com"})
    test_send = campaign.test_sends.get()

    tasks.send_test(test_send.pk)
    tasks.send_test(test_send.pk)  # acks_late: a worker lost after sending gets it again

    engine.handler.wait_for(lambda h: len(h.messages) == 1)
    assert engine.handler.connections == 1


def test_a_test_no_worker_finished_says_so_and_the_page_stops_reloading(marketer_client, setup):
    engine, campaign, _, _ = setup
    marketer_client.post(preview_url(campaign), {"addresses": "me@example.com"})
    long_ago = timezone.now() - preview_selectors.outcome_patience() - timedelta(seconds=1)
    campaign.test_sends.update(requested_at=long_ago)

    page = marketer_client.get(preview_url(campaign)).content.decode()

    assert "has no outcome: no worker finished it. Is Celery running?" in page
    assert 'http-equiv="refresh"' not in page
    # Nor does it block the next test.
    marketer_client.post(preview_url(campaign), {"addresses": "boss@example.com"})
    assert campaign.test_sends.count() == 2


def test_a_test_send_is_queued_for_a_worker_once_the_request_commits(
    marketer_client, setup, django_capture_on_commit_callbacks
):
    engine, campaign, _, _ = setup
    try:
        queued_tasks("celery")  # an empty queue to start from
    except OSError as exc:
        pytest.skip(f"the broker does not answer: {exc}")

    with django_capture_on_commit_callbacks(execute=True):
        marketer_client.post(preview_url(campaign), {"addresses": "me@example.com"})

    assert ("campaigns.send_test", [campaign.test_sends.get().pk]) in queued_tasks("celery")
    assert engine.handler.messages == []


def test_a_test_send_needs_the_csrf_token(marketer, setup):
    engine, campaign, _, _ = setup
    client = Client(enforce_csrf_checks=True)
    client.force_login(marketer)
    assert client.post(preview_url(campaign), {"addresses": "me@example.com"}).status_code == 403
    assert engine.handler.messages == []


def test_bad_test_addresses_are_refused_on_the_form(marketer_client, setup):
    engine, campaign, _, _ = setup
    response = marketer_client.post(preview_url(campaign), {"addresses": "me@example.com, not an address"})
    assert response.status_code == 200 and "“not an address”: Enter a valid email address" in response.content.decode()
    assert engine.handler.messages == []


def test_a_broken_campaign_shows_its_error_on_the_preview(marketer_client, setup):
    _, campaign, _, _ = setup
    Campaign.objects.filter(pk=campaign.pk).update(body_html="{% include 'x' %}")
    body = marketer_client.get(preview_url(campaign)).content.decode()
    assert "This campaign cannot be rendered" in body


def test_the_change_form_links_to_the_preview(marketer_client, setup):
    _, campaign, _, _ = setup
    body = marketer_client.get(f"/admin/campaigns/campaign/{campaign.pk}/change/").content.decode()
    assert preview_url(campaign) in body


# --- templates ---------------------------------------------------------------------------------


def test_save_campaign_as_template(marketer_client, marketer):
    campaign = CampaignFactory(
        owner=marketer, name="Diwali", subject="S {{ name }}", body_html="<p>B</p>", body_text="T"
    )
    EmailTemplateFactory(owner=marketer, name="Diwali")
    response = marketer_client.post(
        "/admin/campaigns/campaign/", {"action": "save_as_template", "_selected_action": [campaign.pk]}, follow=True
    )
    assert response.status_code == 200
    template = EmailTemplate.objects.get(owner=marketer, name="Diwali (2)")
    assert (template.subject, template.body_html, template.body_text) == ("S {{ name }}", "<p>B</p>", "T")


def test_new_campaign_from_template_creates_a_draft_and_opens_it(marketer_client, marketer):
    template = EmailTemplateFactory(owner=marketer, name="Welcome", subject="Hi {{ name }}", body_html="<p>W</p>")
    response = marketer_client.post(
        "/admin/campaigns/emailtemplate/", {"action": "new_campaign_from_template", "_selected_action": [template.pk]}
    )
    campaign = Campaign.objects.get(owner=marketer)
    assert response.status_code == 302 and response["Location"] == f"/admin/campaigns/campaign/{campaign.pk}/change/"
    assert (campaign.name, campaign.subject, campaign.body_html, campaign.status) == (
        "Welcome",
        "Hi {{ name }}",
        "<p>W</p>",
        Campaign.Status.DRAFT,
    )


def test_another_marketers_template_cannot_be_used(other_client, marketer):
    template = EmailTemplateFactory(owner=marketer)
    other_client.post(
        "/admin/campaigns/emailtemplate/", {"action": "new_campaign_from_template", "_selected_action": [template.pk]}
    )
    assert not Campaign.objects.exists()
