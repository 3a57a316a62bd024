"""Review and send, its confirmations and the list's actions that ask first, through the real admin.

Alice (`marketer`) owns everything; mallory (`other_marketer`) finds 404s. Every change is a POST
with the CSRF token; the outcome is read back from the database."""

import datetime
import re

import pytest
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from campaigns.models import Campaign, Email
from campaigns.services import lifecycle
from contacts.models import Contact
from tests.factories import CampaignFactory, ContactFactory, ContactListFactory, SmtpAccountFactory

pytestmark = pytest.mark.django_db

C = Campaign.Status
UTC = datetime.UTC
CAMPAIGNS = reverse("admin:campaigns_campaign_changelist")


def review_url(campaign):
    return reverse("admin:campaigns_campaign_review", args=[campaign.pk])


def confirm_url(campaign, step):
    return reverse("admin:campaigns_campaign_confirm", args=[campaign.pk, step])


def change_url(campaign):
    return reverse("admin:campaigns_campaign_change", args=[campaign.pk])


@pytest.fixture
def draft(marketer):
    readers = ContactListFactory(
        owner=marketer,
        name="Readers",
        contacts=[
            ContactFactory(owner=marketer, email="ann@example.org", name="Ann", attributes={"City": "Pune"}),
            ContactFactory(owner=marketer, email="bob@example.org", name="Bob", attributes={}),
            ContactFactory(owner=marketer, email="gone@example.org", status=Contact.Status.BOUNCED),
        ],
    )
    return CampaignFactory(
        owner=marketer,
        name="Autumn",
        smtp_account=SmtpAccountFactory(owner=marketer, from_name="Alice Ltd", reply_to="help@example.com"),
        subject='Hello {{ name }} in {{ City|default:"your town" }}',
        body_html="<p>Hello {{ name }}</p>" + "<p>A long enough letter about autumn and its offers.</p>" * 80,
        lists=[readers],
    )


# The draft's warnings: its account was never tested, its links never checked.
READ = ["account-untested", "links_not_checked"]


def warning_codes(response):
    return [check.code for check in response.context["warnings"]]


def post_review(client, campaign, **data):
    return client.post(review_url(campaign), data)


# --- the page --------------------------------------------------------------------------------------


def test_the_review_page_shows_audience_sender_subjects_variables_and_checks(marketer_client, draft):
    response = marketer_client.get(review_url(draft))

    assert response.status_code == 200
    page = response.content.decode()
    assert re.search(
        r"List: Readers</td><td class=\"number\">3</td>\s*<td class=\"number\">2</td>\s*<td>1 bounced", page
    )
    assert "Alice Ltd &lt;alice@example.com&gt;" in page and "help@example.com" in page
    assert [subject for _, subject in response.context["samples"]] == ["Hello Ann in Pune", "Hello Bob in your town"]
    assert 'id="preview-desktop"' in page and 'id="preview-phone"' in page
    uses = {use.name: (use.lacking, use.recipients, use.fallback) for use in response.context["variables"]}
    assert uses == {"City": (1, 2, "your town"), "name": (0, 2, None)}
    assert warning_codes(response) == ["account-untested", "links_not_checked"]
    assert '<section id="link-checks"' in page
    assert "In your own time zone: Asia/Kolkata." in page
    assert response["Content-Security-Policy"].count("img-src 'self' data: https:") == 1


def test_another_marketers_campaign_is_a_404_on_every_page(other_client, draft):
    for url in (review_url(draft), confirm_url(draft, "cancel")):
        assert other_client.get(url).status_code == 404
        assert other_client.post(url, {"do": "send_now", "acknowledged": READ}).status_code == 404
    draft.refresh_from_db()
    assert draft.status == C.DRAFT


def test_a_post_without_the_csrf_token_is_refused(marketer, draft):
    client = Client(enforce_csrf_checks=True)
    client.force_login(marketer)

    for url, data in (
        (review_url(draft), {"do": "send_now", "acknowledged": READ}),
        (confirm_url(draft, "cancel"), {}),
        (CAMPAIGNS, {"action": "send_now", "_selected_action": [draft.pk], "post": "yes"}),
    ):
        assert client.post(url, data).status_code == 403
    draft.refresh_from_db()
    assert draft.status == C.DRAFT


# --- schedule and send -----------------------------------------------------------------------------


def test_schedule_refused_until_each_warning_is_ticked(marketer_client, draft):
    response = post_review(marketer_client, draft, do="schedule", scheduled_at="2030-12-01T10:00")

    assert response.status_code == 200
    assert "Cannot schedule. Tick each warning you have read: 2 not ticked." in response.content.decode()
    draft.refresh_from_db()
    assert draft.status == C.DRAFT


def test_schedule_takes_the_time_in_the_marketers_zone(marketer, marketer_client, draft):
    marketer.timezone = "America/New_York"
    marketer.save()

    response = post_review(marketer_client, draft, do="schedule", scheduled_at="2030-12-01T10:00", acknowledged=READ)

    assert response.status_code == 302 and response["Location"] == change_url(draft)
    draft.refresh_from_db()
    # EST in December: UTC-5.
    assert (draft.status, draft.scheduled_at) == (C.SCHEDULED, datetime.datetime(2030, 12, 1, 15, 0, tzinfo=UTC))
    assert not Email.objects.filter(campaign=draft).exists()
    page = marketer_client.get(change_url(draft)).content.decode()
    assert "Scheduled for 2030-12-01 10:00 (America/New_York), to 2 recipient(s) as of now." in page


def test_schedule_in_the_past_is_refused_with_a_clear_error(marketer_client, draft):
    response = post_review(marketer_client, draft, do="schedule", scheduled_at="2020-01-01T09:00", acknowledged=READ)

    assert response.status_code == 200
    assert "2020-01-01 09:00 Asia/Kolkata is in the past; choose a later time, or use Send now" in (
        response.content.decode()
    )
    draft.refresh_from_db()
    assert (draft.status, draft.scheduled_at) == (C.DRAFT, None)


def test_schedule_without_a_time_asks_for_one(marketer_client, draft):
    response = post_review(marketer_client, draft, do="schedule", scheduled_at="", acknowledged=READ)

    assert "Choose when to send it, or use Send now." in response.content.decode()
    draft.refresh_from_db()
    assert draft.status == C.DRAFT


def test_send_now_from_the_review_page_starts_it(marketer_client, draft):
    response = post_review(marketer_client, draft, do="send_now", acknowledged=READ)

    assert response.status_code == 302
    draft.refresh_from_db()
    assert draft.status == C.SENDING
    assert sorted(draft.emails.values_list("to_email", flat=True)) == ["ann@example.org", "bob@example.org"]


def test_an_error_disables_the_buttons_and_the_server_refuses_too(marketer, marketer_client, draft):
    marketer.postal_address = ""
    marketer.save()

    page = marketer_client.get(review_url(draft))

    assert [check.code for check in page.context["errors"]] == ["postal-address"]
    html = page.content.decode()
    assert re.search(r'id="schedule-button"[^>]*disabled', html) and re.search(
        r'id="send-now-button"[^>]*disabled', html
    )
    response = post_review(marketer_client, draft, do="send_now", acknowledged=[*READ, "postal-address"])
    assert "Cannot send. Add your postal address under My profile" in response.content.decode()
    draft.refresh_from_db()
    assert (draft.status, draft.emails.count()) == (C.DRAFT, 0)


def test_a_campaign_out_of_draft_has_no_buttons_and_refuses_a_post(marketer_client, draft):
    lifecycle.schedule(campaign=draft, at=timezone.now() + datetime.timedelta(days=1))

    page = marketer_client.get(review_url(draft))
    assert 'id="not-a-draft"' in page.content.decode() and 'id="send-now-button"' not in page.content.decode()
    response = post_review(marketer_client, draft, do="send_now", acknowledged=READ)
    assert "Only a draft can be scheduled; this campaign is scheduled." in response.content.decode()


def test_a_test_send_from_the_review_page_is_queued(marketer_client, draft, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False):
        response = post_review(marketer_client, draft, do="test", addresses="me@example.org")

    assert response.status_code == 302 and response["Location"].endswith("#test-send")
    test_send = draft.test_sends.get()
    assert test_send.addresses == ["me@example.org"]
    assert test_send.contact.email == "ann@example.org"


# --- the campaign page's buttons and their confirmations -------------------------------------------


@pytest.mark.parametrize(
    "status, buttons",
    [
        (C.DRAFT, ["schedule", "send_now", "cancel"]),
        (C.SCHEDULED, ["unschedule", "pause", "cancel"]),
        (C.SENDING, ["pause", "cancel"]),
        (C.PAUSED, ["resume", "cancel"]),
        (C.COMPLETED, []),
        (C.CANCELLED, []),
    ],
)
def test_the_campaign_page_offers_the_steps_valid_for_its_status(marketer_client, draft, status, buttons):
    Campaign.objects.filter(pk=draft.pk).update(status=status)

    response = marketer_client.get(change_url(draft))

    assert response.context["lifecycle_steps"] == buttons
    assert re.findall(r'id="step-(\w+)"', response.content.decode()) == buttons


def test_cancel_states_how_many_unsent_emails_are_dropped_then_does_it_on_yes(marketer_client, draft):
    lifecycle.send_now(campaign=draft)

    page = marketer_client.get(confirm_url(draft, "cancel"))

    assert "2 unsent email(s) will be dropped for good." in page.content.decode()
    draft.refresh_from_db()
    assert draft.status == C.SENDING  # asking changed nothing
    response = marketer_client.post(confirm_url(draft, "cancel"))
    assert response.status_code == 302 and response["Location"] == change_url(draft)
    draft.refresh_from_db()
    assert draft.status == C.CANCELLED
    assert set(draft.emails.values_list("status", flat=True)) == {Email.Status.CANCELLED}


def test_pause_and_resume_say_what_waits_and_what_goes(marketer_client, draft):
    lifecycle.send_now(campaign=draft)

    assert (
        "2 unsent email(s) will wait until you resume it."
        in marketer_client.get(confirm_url(draft, "pause")).content.decode()
    )
    marketer_client.post(confirm_url(draft, "pause"))
    draft.refresh_from_db()
    assert draft.status == C.PAUSED
    assert (
        "2 unsent email(s) will be sent from where it stopped"
        in marketer_client.get(confirm_url(draft, "resume")).content.decode()
    )
    marketer_client.post(confirm_url(draft, "resume"))
    draft.refresh_from_db()
    assert draft.status == C.SENDING


def test_a_step_not_valid_for_the_status_changes_nothing(marketer_client, draft):
    response = marketer_client.post(confirm_url(draft, "resume"), follow=True)

    assert "Resume: not possible, this campaign is Draft." in response.content.decode()
    draft.refresh_from_db()
    assert draft.status == C.DRAFT
    assert marketer_client.get(confirm_url(draft, "explode")).status_code == 404


# --- the list's actions ask first ------------------------------------------------------------------


@pytest.mark.parametrize(
    "action, sentence, button",
    [
        ("send_now", "2 email(s) of 1 campaign(s) will go out now.", "Yes, send them now"),
        ("cancel", "2 unsent email(s) of 1 campaign(s) will be dropped for good.", "Yes, cancel them for good"),
        ("schedule", "1 campaign(s), 2 email(s) as of now, will be scheduled.", "Yes, schedule them"),
    ],
)
def test_an_irreversible_action_shows_a_confirmation_with_its_counts_first(
    marketer_client, draft, action, sentence, button
):
    response = marketer_client.post(CAMPAIGNS, {"action": action, "_selected_action": [draft.pk]})

    assert response.status_code == 200
    page = response.content.decode()
    assert sentence in page and f'value="{button}"' in page
    assert f'<input type="hidden" name="_selected_action" value="{draft.pk}">' in page
    draft.refresh_from_db()
    assert (draft.status, draft.emails.count()) == (C.DRAFT, 0)

    marketer_client.post(CAMPAIGNS, {"action": action, "_selected_action": [draft.pk], "post": "yes"})
    draft.refresh_from_db()
    assert draft.status == {"send_now": C.SENDING, "cancel": C.CANCELLED, "schedule": C.SCHEDULED}[action]


def test_the_confirmation_lists_only_the_marketers_own_campaigns(marketer_client, draft, other_marketer):
    theirs = CampaignFactory(owner=other_marketer, name="Mallory secret")

    response = marketer_client.post(CAMPAIGNS, {"action": "cancel", "_selected_action": [draft.pk, theirs.pk]})

    assert "Mallory secret" not in response.content.decode()
    marketer_client.post(CAMPAIGNS, {"action": "cancel", "_selected_action": [draft.pk, theirs.pk], "post": "yes"})
    theirs.refresh_from_db()
    assert theirs.status == C.DRAFT
