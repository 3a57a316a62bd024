"""A campaign's recipients written in chunks that each commit (lifecycle.prepare_recipients): the
campaign sends while the rest is written, in contact-id order, nobody missed or written twice,
whatever stops a chunk halfway; it never completes while recipients are still to come."""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from campaigns import ledger
from campaigns.models import Campaign, Email
from campaigns.selectors import audience
from campaigns.services import lifecycle
from contacts.models import Contact
from tests.factories import ContactFactory
from tracking import services as tracking

C, S = Campaign.Status, Email.Status


@pytest.fixture
def small_chunks(settings):
    """Chunks of 3 contacts, one chunk per start, extend and tick."""
    settings.RECIPIENTS_CHUNK_SIZE = 3
    settings.RECIPIENTS_PREPARE_SECONDS = 0


def addresses(n, prefix="reader"):
    return [f"{prefix}{i}@example.org" for i in range(n)]


def tick_until_completed(engine, campaign, ticks=20):
    for _ in range(ticks):
        engine.tick()
        campaign.refresh_from_db()
        if campaign.status == C.COMPLETED:
            return
        engine.clock.advance(seconds=10)
    raise AssertionError(f"not completed after {ticks} ticks: {campaign.status}")


def test_a_large_audience_is_written_in_chunks_while_it_sends_and_completes_only_at_the_end(engine, small_chunks):
    readers = engine.contact_list(*addresses(10))
    campaign = engine.campaign(readers)
    engine.send_now(campaign)

    campaign.refresh_from_db()
    first_three = sorted(readers.contacts.values_list("pk", flat=True))[:3]
    assert campaign.status == C.SENDING
    assert campaign.recipients_cursor == first_three[-1]  # the chunk's last contact, in id order
    assert sorted(campaign.emails.values_list("contact_id", flat=True)) == first_three
    assert audience.preparation_progress(campaign=campaign) == (3, 10)

    statuses_while_preparing = []
    for _ in range(4):  # each tick writes one chunk, then sends what exists
        engine.tick()
        engine.clock.advance(seconds=10)
        campaign.refresh_from_db()
        if campaign.is_preparing:
            statuses_while_preparing.append(campaign.status)
    # Every row written so far was sent within each tick: only the cursor kept it from completing.
    assert statuses_while_preparing and set(statuses_while_preparing) == {C.SENDING}
    tick_until_completed(engine, campaign)

    assert sorted(engine.handler.delivered_to()) == sorted(addresses(10))
    assert campaign.emails.count() == 10 and campaign.recipients_cursor is None


def test_complete_finished_never_completes_a_campaign_whose_recipients_are_being_written(engine, small_chunks):
    campaign = engine.campaign(engine.contact_list(*addresses(5)))
    engine.send_now(campaign)
    ledger.cancel_open(campaign_id=campaign.pk, now=engine.clock())  # no open row left, yet 2 contacts to come

    assert lifecycle.complete_finished(now=engine.clock()) == 0
    campaign.refresh_from_db()
    assert campaign.status == C.SENDING


def test_a_crash_in_the_middle_of_a_chunk_loses_it_whole_and_the_next_tick_goes_on(engine, small_chunks, monkeypatch):
    readers = engine.contact_list(*addresses(8))
    campaign = engine.campaign(readers)
    real_chunk = ledger.materialise_chunk
    calls = []

    def chunk_then_crash(**kwargs):
        result = real_chunk(**kwargs)  # the rows are inserted...
        calls.append(result)
        if len(calls) == 2:
            raise RuntimeError("worker killed")  # ... and the process dies before the chunk commits
        return result

    monkeypatch.setattr(ledger, "materialise_chunk", chunk_then_crash)
    engine.send_now(campaign)  # the first chunk commits
    with pytest.raises(RuntimeError):
        lifecycle.prepare_recipients(campaign_id=campaign.pk, now=engine.clock())

    campaign.refresh_from_db()
    ids = sorted(readers.contacts.values_list("pk", flat=True))
    assert campaign.recipients_cursor == ids[2]  # the second chunk's cursor went with its rows
    assert sorted(campaign.emails.values_list("contact_id", flat=True)) == ids[:3]

    tick_until_completed(engine, campaign)
    assert sorted(engine.handler.delivered_to()) == sorted(addresses(8))
    assert sorted(campaign.emails.values_list("contact_id", flat=True)) == ids


def test_chunks_follow_the_owners_contacts_and_skip_what_is_not_the_audience(engine, small_chunks):
    """A chunk is a range of the owner's subscribed contacts: those off the lists, suppressed, or
    another owner's are skipped, and a contact on two lists is one row."""
    on_list = engine.contact_list(*addresses(4))
    ContactFactory(owner=engine.owner, email="not-on-the-list@example.org")
    ContactFactory(owner=engine.owner, email="gone@example.org", status=Contact.Status.UNSUBSCRIBED)
    ContactFactory(email="someone-elses@example.org")
    second = engine.contact_list(*addresses(2, prefix="second"))
    second.contacts.add(*on_list.contacts.all()[:2])
    campaign = engine.campaign(on_list, second)
    engine.send_now(campaign)

    tick_until_completed(engine, campaign)
    assert sorted(engine.handler.delivered_to()) == sorted(addresses(4) + addresses(2, prefix="second"))


def test_cancel_while_preparing_stops_the_preparation_and_sends_nothing_more(engine, small_chunks):
    campaign = engine.campaign(engine.contact_list(*addresses(9)))
    engine.send_now(campaign)
    lifecycle.cancel(campaign=campaign)

    campaign.refresh_from_db()
    assert campaign.status == C.CANCELLED and campaign.recipients_cursor is None
    engine.tick()
    assert campaign.emails.count() == 3
    assert set(campaign.emails.values_list("status", flat=True)) == {S.CANCELLED}
    assert engine.handler.delivered_to() == []


def test_a_paused_campaign_is_prepared_but_not_sent_until_resumed(engine, small_chunks):
    campaign = engine.campaign(engine.contact_list(*addresses(7)))
    engine.send_now(campaign)
    lifecycle.pause(campaign=campaign)
    for _ in range(3):
        engine.tick()
    campaign.refresh_from_db()
    assert campaign.emails.filter(status=S.PENDING).count() == 7 and not campaign.is_preparing
    assert engine.handler.delivered_to() == []

    lifecycle.resume(campaign=campaign)
    tick_until_completed(engine, campaign)
    assert sorted(engine.handler.delivered_to()) == sorted(addresses(7))


def test_extend_writes_the_new_contacts_in_chunks_and_reopens_the_completed_campaign(engine, small_chunks):
    readers = engine.contact_list(*addresses(4))
    campaign = engine.campaign(readers)
    engine.send_now(campaign)
    tick_until_completed(engine, campaign)

    readers.contacts.add(*[ContactFactory(owner=engine.owner, email=a) for a in addresses(4, prefix="late")])
    engine.clock.advance(minutes=5)
    # The first chunk covers the first contacts, already in it: nothing added yet, nothing re-sent.
    assert lifecycle.extend_to_new_contacts(campaign=campaign, now=engine.clock()) == 0
    campaign.refresh_from_db()
    assert campaign.is_preparing and campaign.status == C.COMPLETED

    tick_until_completed(engine, campaign)
    assert sorted(engine.handler.delivered_to()) == sorted(addresses(4) + addresses(4, prefix="late"))
    assert campaign.emails.count() == 8
    assert campaign.status_events.filter(reason="extended to new contacts", to_status=C.SENDING).count() == 1


def test_a_resend_to_non_openers_is_written_in_chunks(engine, small_chunks):
    source = engine.campaign(engine.contact_list(*addresses(7)))
    engine.send_now(source)
    tick_until_completed(engine, source)
    for email in source.emails.filter(to_email__in=addresses(3)):
        tracking.record_open(
            email_id=email.pk, user_agent="Mozilla/5.0 (Windows NT 10.0)", now=engine.clock() + timedelta(hours=1)
        )
    resend = lifecycle.resend_to_non_openers(campaign=source)
    engine.clock.advance(hours=2)
    engine.handler.messages.clear()

    engine.send_now(resend)
    resend.refresh_from_db()
    assert resend.is_preparing
    tick_until_completed(engine, resend)
    assert sorted(engine.handler.delivered_to()) == sorted(addresses(7)[3:])


def test_the_pages_and_the_analytics_json_show_the_preparation(engine, small_chunks, marketer_client):
    campaign = engine.campaign(engine.contact_list(*addresses(10)), name="Big one")
    engine.send_now(campaign)
    text = "preparing recipients (3 of 10)"

    type(campaign.smtp_account).objects.filter(pk=campaign.smtp_account_id).update(max_per_minute=60)
    data = marketer_client.get(reverse("campaign_analytics_data", args=[campaign.pk])).json()
    assert data["preparing"] == {"written": 3, "expected": 10, "text": text}
    # The progress bar is of the whole audience, its estimate too: 10 to send at 60/min, not the 3 written.
    assert (data["progress"]["done"], data["progress"]["total"], data["progress"]["eta_seconds"]) == (0, 10, 10)
    assert text in marketer_client.get(reverse("campaign_analytics", args=[campaign.pk])).content.decode()
    assert text in marketer_client.get(reverse("admin:campaigns_campaign_changelist")).content.decode()
    assert text in marketer_client.get(reverse("admin:campaigns_campaign_change", args=[campaign.pk])).content.decode()

    tick_until_completed(engine, campaign)
    data = marketer_client.get(reverse("campaign_analytics_data", args=[campaign.pk])).json()
    assert data["preparing"] is None
    page = marketer_client.get(reverse("admin:campaigns_campaign_change", args=[campaign.pk])).content.decode()
    assert "preparing recipients" not in page and "Recipients being written" not in page


def test_the_tick_shares_its_preparation_time_among_the_campaigns_being_prepared(engine, small_chunks):
    first = engine.campaign(engine.contact_list(*addresses(6, prefix="first"), name="first"))
    second = engine.campaign(engine.contact_list(*addresses(6, prefix="second"), name="second"))
    engine.send_now(first)
    engine.send_now(second)

    before = dict(Campaign.objects.filter(pk__in=[first.pk, second.pk]).values_list("pk", "recipients_cursor"))
    engine.tick()  # one chunk each: neither waits for the other's end
    after = dict(Campaign.objects.filter(pk__in=[first.pk, second.pk]).values_list("pk", "recipients_cursor"))
    assert after[first.pk] > before[first.pk] and after[second.pk] > before[second.pk]
    tick_until_completed(engine, first)
    tick_until_completed(engine, second)
    assert sorted(engine.handler.delivered_to()) == sorted(addresses(6, prefix="first") + addresses(6, prefix="second"))


def test_start_counts_the_expected_recipients_before_its_short_transaction(engine, small_chunks):
    campaign = engine.campaign(engine.contact_list(*addresses(5)))
    lifecycle.schedule(campaign=campaign, at=timezone.now())
    assert lifecycle.start(campaign_id=campaign.pk, now=engine.clock(), prepare_seconds=0) == 3
    assert lifecycle.start(campaign_id=campaign.pk, now=engine.clock()) is None  # already started
    campaign.refresh_from_db()
    assert campaign.recipients_expected == 5


def test_cancel_of_a_large_campaign_cancels_its_unsent_rows_in_chunks_and_sends_nothing_after(engine, small_chunks):
    campaign = engine.campaign(engine.contact_list(*addresses(8)))
    engine.send_now(campaign)
    while campaign.is_preparing:  # every recipient written, none sent
        lifecycle.prepare_recipients(campaign_id=campaign.pk, now=engine.clock())
        campaign.refresh_from_db()
    Email.objects.filter(campaign=campaign, to_email=addresses(8)[-1]).update(
        status=S.DEFERRED, next_attempt_at=engine.clock() + timedelta(hours=1)
    )

    lifecycle.cancel(campaign=campaign)
    assert campaign.emails.filter(status=S.CANCELLED).count() == 3  # the first chunk, in the request
    engine.tick()  # the dispatcher cancels the rest, a chunk a tick here, deferred rows too, and claims none
    assert campaign.emails.filter(status=S.CANCELLED).count() == 6
    engine.tick()
    assert set(campaign.emails.values_list("status", flat=True)) == {S.CANCELLED}
    assert engine.handler.delivered_to() == []
    campaign.refresh_from_db()
    assert campaign.status == C.CANCELLED


def test_the_commands_say_how_far_the_preparation_is(engine, small_chunks):
    import io

    from django.core.management import call_command

    campaign = engine.campaign(engine.contact_list(*addresses(7)))
    out = io.StringIO()
    call_command("send_campaign", str(campaign.pk), stdout=out)
    assert "Sending while preparing recipients (3 of 7)" in out.getvalue()

    out = io.StringIO()
    lifecycle.pause(campaign=campaign)  # a tick writes recipients but sends nothing
    call_command("dispatch", stdout=out)
    assert "wrote 3 recipient(s)" in out.getvalue()
    assert f"Campaign {campaign.pk} ({campaign.name}): preparing recipients (6 of 7)." in out.getvalue()


def test_the_extend_action_says_the_rest_is_being_written(engine, small_chunks, marketer_client):
    readers = engine.contact_list(*addresses(4))
    campaign = engine.campaign(readers)
    engine.send_now(campaign)
    tick_until_completed(engine, campaign)
    readers.contacts.add(*[ContactFactory(owner=engine.owner, email=a) for a in addresses(2, prefix="late")])

    response = marketer_client.post(
        reverse("admin:campaigns_campaign_changelist"),
        {"action": "extend", "_selected_action": [campaign.pk]},
        follow=True,
    )
    shown = [m.message for m in response.context["messages"]]
    assert shown == ["0 new recipient(s) added so far; the rest of 1 campaign(s) is being written."]
    tick_until_completed(engine, campaign)
    assert campaign.emails.count() == 6
