"""The audience of a campaign before it starts: counted with the rule the start materialises by."""

import datetime
import re

import pytest
from django.urls import reverse
from django.utils import timezone

from campaigns import ledger
from campaigns.models import Campaign, Email
from campaigns.selectors import audience
from campaigns.services import lifecycle
from contacts.models import Contact
from tests.factories import CampaignFactory, ContactFactory, ContactListFactory

pytestmark = pytest.mark.django_db

CAMPAIGNS = reverse("admin:campaigns_campaign_changelist")


@pytest.fixture
def mixed_campaign(marketer, other_marketer):
    """Alice's draft whose lists hold 7 subscribed addresses among contacts that must not count."""
    subscribed = [ContactFactory(owner=marketer, email=f"reader{n}@example.org") for n in range(6)]
    shared = ContactFactory(owner=marketer, email="both-lists@example.org")
    left_out = [
        ContactFactory(owner=marketer, email=f"{status}@example.org", status=status)
        for status in (Contact.Status.UNSUBSCRIBED, Contact.Status.BOUNCED, Contact.Status.COMPLAINED)
    ]
    # Put in alice's list by a superuser: someone else's contact is never alice's recipient.
    foreign_contact = ContactFactory(owner=other_marketer, email="mallory-contact@example.org")
    first = ContactListFactory(owner=marketer, contacts=[*subscribed[:4], shared, *left_out, foreign_contact])
    second = ContactListFactory(owner=marketer, contacts=[*subscribed[4:], shared])
    ContactFactory(owner=marketer, email="on-no-list@example.org")
    return CampaignFactory(owner=marketer, name="Alice spring", lists=[first, second])


def test_the_audience_count_equals_what_the_start_materialises(mixed_campaign, marketer, other_marketer):
    # Chosen by a superuser (scheduling refuses it): materialise skips a list of someone else's, even with
    # a contact of alice's on it.
    foreign_list = ContactListFactory(
        owner=other_marketer, contacts=[ContactFactory(owner=other_marketer, email="mallory-list@example.org")]
    )
    foreign_list.contacts.add(ContactFactory(owner=marketer, email="only-on-foreign-list@example.org"))
    mixed_campaign.lists.add(foreign_list)

    counted = audience.audience_count(campaign=mixed_campaign)

    inserted = ledger.materialise(campaign_id=mixed_campaign.pk, now=timezone.now())

    assert counted == inserted == Email.objects.filter(campaign=mixed_campaign).count()
    assert counted == 7


def test_a_draft_shows_who_would_receive_it_on_its_change_page(marketer_client, mixed_campaign):
    page = marketer_client.get(reverse("admin:campaigns_campaign_change", args=[mixed_campaign.pk]))

    assert page.status_code == 200
    assert "Would go to 7 recipient(s)" in page.content.decode()


def test_a_started_campaign_keeps_showing_its_email_rows(marketer_client, mixed_campaign):
    lifecycle.send_now(campaign=mixed_campaign)
    # Joining a list after the start does not change who this campaign is being sent to.
    mixed_campaign.lists.first().contacts.add(ContactFactory(owner=mixed_campaign.owner, email="late@example.org"))

    page = marketer_client.get(reverse("admin:campaigns_campaign_change", args=[mixed_campaign.pk])).content.decode()

    assert "Would go to" not in page
    assert re.search(r'campaign__id__exact=\d+">7 recipient\(s\)</a>', page)


def test_the_schedule_action_confirms_the_time_and_the_audience(marketer_client, mixed_campaign, marketer):
    marketer.timezone = "America/New_York"
    marketer.save()
    Campaign.objects.filter(pk=mixed_campaign.pk).update(
        scheduled_at=datetime.datetime(2030, 12, 1, 15, 0, tzinfo=datetime.UTC)
    )

    response = marketer_client.post(
        CAMPAIGNS, {"action": "schedule", "_selected_action": [mixed_campaign.pk], "post": "yes"}, follow=True
    )

    shown = [str(m) for m in response.context["messages"]]
    confirmation = "Alice spring: scheduled for 2030-12-01 10:00 (America/New_York), to 7 recipient(s) as of now."
    assert confirmation in shown
    assert "1 campaign(s) scheduled." in shown


def test_another_marketers_draft_and_its_audience_stay_hidden(other_client, mixed_campaign):
    page = other_client.get(reverse("admin:campaigns_campaign_change", args=[mixed_campaign.pk]))

    assert page.status_code == 404
    assert "Would go to" not in page.content.decode()
