"""Resend to non-openers: a new draft whose audience, fixed at its start, is the source campaign's
recipients that were sent it and never opened it (a machine open is no open)."""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from campaigns import ledger
from campaigns.models import Campaign, Email
from campaigns.selectors import audience
from campaigns.services import lifecycle
from contacts.models import Contact
from contacts.services import contacts
from tests.factories import CampaignFactory, ContactFactory, ContactListFactory, EmailFactory
from tracking import services as tracking

pytestmark = pytest.mark.django_db

C, S = Campaign.Status, Email.Status
CAMPAIGNS = reverse("admin:campaigns_campaign_changelist")


def _sent(campaign, address, **fields):
    contact = ContactFactory(owner=campaign.owner, email=address)
    return EmailFactory(
        campaign=campaign,
        contact=contact,
        status=fields.pop("status", S.SENT),
        sent_at=timezone.now() - timedelta(hours=2),
        **fields,
    )


@pytest.fixture
def finished(marketer):
    """Alice's completed campaign: one row of each kind the rule must tell apart."""
    campaign = CampaignFactory(
        owner=marketer,
        name="Spring news",
        status=C.COMPLETED,
        track_clicks=False,
        subject="Our spring",
        body_html="<p>Spring is here</p>",
    )
    _sent(campaign, "not-opened@example.org")
    _sent(campaign, "reader@example.org", first_opened_at=timezone.now(), open_count=1)
    _sent(campaign, "machine-only@example.org", machine_open=True)
    _sent(campaign, "failed@example.org", status=S.FAILED, failure_class=Email.FailureClass.BOUNCED)
    _sent(campaign, "cancelled@example.org", status=S.CANCELLED)
    _sent(campaign, "unsubscribed-since@example.org")
    since = Contact.objects.filter(email="unsubscribed-since@example.org").values_list("pk", flat=True)
    contacts.suppress(contact_ids=since, status=Contact.Status.UNSUBSCRIBED, now=timezone.now())
    return campaign


def test_the_resend_goes_to_those_sent_it_who_did_not_open_it_and_are_still_subscribed(finished):
    resend = lifecycle.resend_to_non_openers(campaign=finished)

    counted = audience.audience_count(campaign=resend)
    inserted = ledger.materialise(campaign_id=resend.pk, now=timezone.now())

    assert set(Email.objects.filter(campaign=resend).values_list("to_email", flat=True)) == {
        "not-opened@example.org",
        "machine-only@example.org",
    }
    assert counted == inserted == 2


def test_the_resend_is_a_draft_with_the_same_message_account_and_tracking(finished):
    resend = lifecycle.resend_to_non_openers(campaign=finished)

    assert resend.status == C.DRAFT
    assert resend.name == "Spring news (resend to non-openers)"
    assert (resend.subject, resend.body_html, resend.smtp_account_id, resend.owner_id) == (
        finished.subject,
        finished.body_html,
        finished.smtp_account_id,
        finished.owner_id,
    )
    assert (resend.track_opens, resend.track_clicks) == (True, False)
    assert resend.source_campaign == finished and resend.source_rule == Campaign.SourceRule.NOT_OPENED
    assert lifecycle.problems_before_scheduling(campaign=resend) == []


def test_the_audience_is_who_has_not_opened_at_the_start_not_at_the_resend(finished):
    resend = lifecycle.resend_to_non_openers(campaign=finished)
    late_reader = Email.objects.get(campaign=finished, to_email="not-opened@example.org")
    tracking.record_open(email_id=late_reader.pk, user_agent="Mozilla/5.0 (Windows NT 10.0)", now=timezone.now())

    lifecycle.send_now(campaign=resend)

    assert list(Email.objects.filter(campaign=resend).values_list("to_email", flat=True)) == [
        "machine-only@example.org"
    ]


def test_other_owners_contacts_are_never_in_a_resend(finished, other_marketer):
    # A superuser put someone else's contact on Alice's ledger: still never her recipient.
    foreign = ContactFactory(owner=other_marketer, email="mallory-contact@example.org")
    EmailFactory(campaign=finished, contact=foreign, status=S.SENT, sent_at=timezone.now())
    # And Mallory's own non-openers are not Alice's.
    mallory_campaign = CampaignFactory(owner=other_marketer, status=C.COMPLETED)
    _sent(mallory_campaign, "mallory-reader@example.org")
    resend = lifecycle.resend_to_non_openers(campaign=finished)

    inserted = ledger.materialise(campaign_id=resend.pk, now=timezone.now())

    assert inserted == audience.audience_count(campaign=resend) == 2
    assert not Email.objects.filter(campaign=resend, to_email__startswith="mallory").exists()


def test_a_campaign_with_lists_still_materialises_from_them(marketer):
    # The resend's half of the statement stays off for an ordinary campaign.
    contact_list = ContactListFactory(owner=marketer, contacts=[ContactFactory(owner=marketer) for _ in range(3)])
    campaign = CampaignFactory(owner=marketer, lists=[contact_list])

    assert ledger.materialise(campaign_id=campaign.pk, now=timezone.now()) == 3


@pytest.mark.parametrize("status", [C.DRAFT, C.SCHEDULED, C.SENDING, C.PAUSED, C.CANCELLED])
def test_only_a_completed_campaign_can_be_resent(marketer, status):
    campaign = CampaignFactory(owner=marketer, status=status)

    with pytest.raises(lifecycle.LifecycleError, match=f"Only a completed campaign .* this one is {status}"):
        lifecycle.resend_to_non_openers(campaign=campaign)
    assert Campaign.objects.count() == 1


def test_a_duplicated_resend_goes_to_the_same_audience(finished):
    copy = lifecycle.duplicate(campaign=lifecycle.resend_to_non_openers(campaign=finished))

    assert (copy.source_campaign, copy.source_rule) == (finished, Campaign.SourceRule.NOT_OPENED)
    assert audience.audience_count(campaign=copy) == 2


def test_a_resend_whose_source_was_deleted_cannot_be_scheduled(finished):
    resend = lifecycle.resend_to_non_openers(campaign=finished)
    finished.delete()
    resend.refresh_from_db()

    with pytest.raises(lifecycle.LifecycleError, match="the campaign it resends was deleted"):
        lifecycle.schedule(campaign=resend)


# --- the admin action ---------------------------------------------------------------------------


def _act(client, *campaigns, follow=False):
    return client.post(
        CAMPAIGNS, {"action": "resend_to_non_openers", "_selected_action": [c.pk for c in campaigns]}, follow=follow
    )


def test_the_action_opens_the_new_draft_which_says_who_it_will_go_to(marketer_client, finished):
    response = _act(marketer_client, finished)

    resend = Campaign.objects.get(source_campaign=finished)
    assert response.status_code == 302
    assert response["Location"] == reverse("admin:campaigns_campaign_change", args=[resend.pk])
    page = marketer_client.get(response["Location"]).content.decode()
    assert "to 2 contact(s) who have not opened the first one so far" in page
    assert "Would go to 2 recipient(s): the contacts who received “Spring news” and did not open it" in page
    assert 'name="subject"' in page and 'name="lists"' not in page


def test_the_subject_can_be_changed_on_the_drafts_page(marketer_client, finished):
    resend = lifecycle.resend_to_non_openers(campaign=finished)
    url = reverse("admin:campaigns_campaign_change", args=[resend.pk])
    form = {
        "name": resend.name,
        "smtp_account": resend.smtp_account_id,
        "subject": "Did you miss our spring?",
        "body_html": resend.body_html,
        "body_text": "",
        "track_opens": "on",
        "scheduled_at_0": "",
        "scheduled_at_1": "",
    }

    response = marketer_client.post(url, form)

    assert response.status_code == 302, response.content.decode()[:3000]
    resend.refresh_from_db()
    assert resend.subject == "Did you miss our spring?" and resend.source_campaign == finished


def test_the_action_refuses_a_campaign_not_completed_with_a_clear_message(marketer_client, marketer):
    sending = CampaignFactory(owner=marketer, name="Still going", status=C.SENDING)

    page = _act(marketer_client, sending, follow=True).content.decode()

    assert "Still going: Only a completed campaign can be resent to its non-openers; this one is sending." in page
    assert not Campaign.objects.filter(source_campaign=sending).exists()


def test_another_owners_campaign_cannot_be_resent(other_client, finished):
    _act(other_client, finished)

    assert not Campaign.objects.filter(source_campaign=finished).exists()


# --- end to end -----------------------------------------------------------------------------------


def test_a_resend_is_sent_through_the_engine_to_the_non_openers_only(engine):
    first = engine.campaign(
        engine.contact_list("ann@example.org", "bob@example.org", "cyd@example.org", "dee@example.org")
    )
    engine.send_now(first)
    engine.tick()
    first.refresh_from_db()
    assert first.status == C.COMPLETED
    later = engine.clock.advance(hours=1)
    tracking.record_open(
        email_id=engine.email(first, "ann@example.org").pk, user_agent="Mozilla/5.0 (Windows NT 10.0)", now=later
    )
    tracking.record_open(
        email_id=engine.email(first, "bob@example.org").pk,
        user_agent="Mozilla/5.0 (via ggpht.com GoogleImageProxy)",
        now=later,
    )
    engine.handler.messages.clear()

    resend = lifecycle.resend_to_non_openers(campaign=first)
    resend.subject = "In case you missed it"
    resend.save()
    engine.send_now(resend)
    engine.tick()

    resend.refresh_from_db()
    assert resend.status == C.COMPLETED
    assert sorted(engine.handler.delivered_to()) == ["bob@example.org", "cyd@example.org", "dee@example.org"]
    assert set(engine.statuses(resend).values()) == {S.SENT}
    assert all("In case you missed it" in m.parsed()["Subject"] for m in engine.handler.messages)
