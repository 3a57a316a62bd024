"""Campaign lifecycle services and their manage.py commands.

Sending goes through the real dispatcher and sender against aiosmtpd (the `engine`
fixture), so "re-sends only X" is what the SMTP server actually received.
"""

import datetime
import io

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from campaigns.models import Campaign, Email
from campaigns.services import lifecycle
from contacts.models import Contact
from tests.factories import CampaignFactory, ContactFactory, ContactListFactory, MarketerFactory, SmtpAccountFactory
from tests.smtp_server import RecordingHandler

S = Email.Status
C = Campaign.Status
UTC = datetime.UTC


def command(name, *args, **options):
    out = io.StringIO()
    call_command(name, *[str(a) for a in args], stdout=out, stderr=io.StringIO(), **options)
    return out.getvalue()


# --- schedule refuses an incomplete campaign -------------------------------------------------------


@pytest.fixture
def complete_draft(marketer):
    contacts = ContactListFactory(owner=marketer, contacts=[ContactFactory(owner=marketer)])
    return CampaignFactory(owner=marketer, lists=[contacts])


@pytest.mark.parametrize(
    ("missing", "message"),
    [
        ("smtp_account", "choose an SMTP account"),
        ("subject", "write a subject"),
        ("body", "write a body"),
        ("lists", "choose at least one contact list or segment"),
    ],
)
def test_schedule_refuses_an_incomplete_campaign_with_a_clear_message(complete_draft, missing, message):
    campaign = complete_draft
    if missing == "smtp_account":
        campaign.smtp_account = None
    elif missing == "subject":
        campaign.subject = "   "
    elif missing == "body":
        campaign.body_html = "  "
        campaign.body_text = ""
    else:
        campaign.lists.clear()
    campaign.save()

    with pytest.raises(lifecycle.LifecycleError) as refused:
        lifecycle.schedule(campaign=campaign, at=timezone.now() + datetime.timedelta(hours=1))

    assert str(refused.value) == f"Cannot schedule: {message}."
    campaign.refresh_from_db()
    assert (campaign.status, campaign.scheduled_at) == (C.DRAFT, None)
    # The command says the same, and sending now is refused alike.
    with pytest.raises(CommandError, match=f"Cannot schedule: {message}"):
        command("send_campaign", campaign.pk)
    assert not Email.objects.filter(campaign=campaign).exists()


def test_schedule_lists_every_problem_at_once(marketer):
    campaign = CampaignFactory(owner=marketer, smtp_account=None, subject="", body_html="")

    with pytest.raises(lifecycle.LifecycleError) as refused:
        lifecycle.schedule(campaign=campaign)

    assert str(refused.value) == (
        "Cannot schedule: choose an SMTP account; write a subject; write a body; choose at least one contact list or segment."
    )


def test_schedule_refuses_another_owners_account_and_lists(marketer, other_marketer):
    foreign_list = ContactListFactory(owner=other_marketer, contacts=[ContactFactory(owner=other_marketer)])
    foreign_account = SmtpAccountFactory(owner=other_marketer)
    campaign = CampaignFactory(owner=marketer, smtp_account=foreign_account, lists=[foreign_list])

    expected = "the SMTP account belongs to someone else; .*a chosen list belongs to someone else"
    with pytest.raises(lifecycle.LifecycleError, match=expected):
        lifecycle.schedule(campaign=campaign)


def test_only_a_draft_can_be_scheduled(complete_draft):
    lifecycle.schedule(campaign=complete_draft)
    with pytest.raises(lifecycle.LifecycleError, match="Only a draft can be scheduled; this campaign is scheduled"):
        lifecycle.schedule(campaign=complete_draft)


def test_schedule_refuses_a_time_in_the_past_beyond_a_minute_of_grace(complete_draft):
    now = timezone.now()
    typo = datetime.datetime(2020, 1, 1, 4, 30, tzinfo=UTC)  # 10:00 in Kolkata

    with pytest.raises(lifecycle.LifecycleError) as refused:
        lifecycle.schedule(campaign=complete_draft, at=typo, now=now)
    with pytest.raises(lifecycle.LifecycleError, match="is in the past"):
        lifecycle.schedule(campaign=complete_draft, at=now - datetime.timedelta(seconds=61), now=now)

    assert str(refused.value) == (
        "Cannot schedule: 2020-01-01 10:00 Asia/Kolkata is in the past; choose a later time, "
        "or use Send now to send at once."
    )
    complete_draft.refresh_from_db()
    assert (complete_draft.status, complete_draft.scheduled_at) == (C.DRAFT, None)

    # A time typed for "now" that is a few seconds behind is still scheduled.
    lifecycle.schedule(campaign=complete_draft, at=now - datetime.timedelta(seconds=59), now=now)
    complete_draft.refresh_from_db()
    assert complete_draft.status == C.SCHEDULED


def test_schedule_names_a_past_time_with_the_other_problems(marketer):
    campaign = CampaignFactory(owner=marketer, subject="")

    with pytest.raises(lifecycle.LifecycleError) as refused:
        lifecycle.schedule(campaign=campaign, at=timezone.now() - datetime.timedelta(days=1))

    assert str(refused.value).startswith(
        "Cannot schedule: write a subject; choose at least one contact list or segment; "
    )
    assert "is in the past" in str(refused.value)


# --- send_campaign --at in the owner's zone -------------------------------------------------------


def test_send_campaign_at_a_local_time_stores_utc_for_an_ist_owner(complete_draft):
    assert complete_draft.owner.timezone == "Asia/Kolkata"

    out = command("send_campaign", complete_draft.pk, at="2030-12-01 10:00")

    complete_draft.refresh_from_db()
    assert complete_draft.status == C.SCHEDULED
    assert complete_draft.scheduled_at == datetime.datetime(2030, 12, 1, 4, 30, tzinfo=UTC)
    assert "2030-12-01 10:00 Asia/Kolkata (2030-12-01 04:30 UTC)" in out
    assert not Email.objects.filter(campaign=complete_draft).exists()  # nothing materialised before it is due


def test_send_campaign_at_follows_each_owners_zone(db):
    owner = MarketerFactory(username="nyc", timezone="America/New_York")
    contact_list = ContactListFactory(owner=owner, contacts=[ContactFactory(owner=owner)])
    campaign = CampaignFactory(owner=owner, lists=[contact_list])

    command("send_campaign", campaign.pk, at="2030-12-01 10:00")

    campaign.refresh_from_db()
    assert campaign.scheduled_at == datetime.datetime(2030, 12, 1, 15, 0, tzinfo=UTC)


def test_send_campaign_refuses_a_malformed_time(complete_draft):
    with pytest.raises(CommandError, match="is not a time like 2026-12-01 10:00"):
        command("send_campaign", complete_draft.pk, at="1 Dec 10am")
    complete_draft.refresh_from_db()
    assert complete_draft.status == C.DRAFT


def test_send_campaign_refuses_a_past_time_and_schedules_nothing(complete_draft):
    with pytest.raises(CommandError) as refused:
        command("send_campaign", complete_draft.pk, at="2020-01-01 10:00")

    assert str(refused.value) == (
        "Cannot schedule: 2020-01-01 10:00 Asia/Kolkata is in the past; choose a later time, "
        "or use Send now to send at once."
    )
    complete_draft.refresh_from_db()
    assert (complete_draft.status, complete_draft.scheduled_at) == (C.DRAFT, None)
    assert not Email.objects.filter(campaign=complete_draft).exists()


def test_send_campaign_without_at_materialises_at_once(complete_draft):
    out = command("send_campaign", complete_draft.pk)

    complete_draft.refresh_from_db()
    assert complete_draft.status == C.SENDING and complete_draft.started_at is not None
    assert "1 recipient(s) queued for sending." in out
    assert Email.objects.filter(campaign=complete_draft, status=S.PENDING).count() == 1


def test_a_command_on_a_missing_campaign_says_so(db):
    with pytest.raises(CommandError, match="No campaign with id 999999"):
        command("pause_campaign", 999999)


# --- pause, resume, cancel commands ---------------------------------------------------------------


def test_pause_resume_and_cancel_commands(complete_draft):
    command("send_campaign", complete_draft.pk)

    assert "is now paused" in command("pause_campaign", complete_draft.pk)
    complete_draft.refresh_from_db()
    assert complete_draft.status == C.PAUSED

    with pytest.raises(CommandError, match="Only a sending or scheduled campaign can be paused; this one is paused"):
        command("pause_campaign", complete_draft.pk)

    assert "is now sending" in command("resume_campaign", complete_draft.pk)
    complete_draft.refresh_from_db()
    assert complete_draft.status == C.SENDING

    with pytest.raises(CommandError, match="Only a paused campaign can be resumed; this one is sending"):
        command("resume_campaign", complete_draft.pk)

    assert "is now cancelled" in command("cancel_campaign", complete_draft.pk)
    complete_draft.refresh_from_db()
    assert complete_draft.status == C.CANCELLED and complete_draft.completed_at is not None
    assert set(Email.objects.filter(campaign=complete_draft).values_list("status", flat=True)) == {S.CANCELLED}

    with pytest.raises(CommandError, match="This campaign is cancelled and cannot be cancelled"):
        command("cancel_campaign", complete_draft.pk)


def test_a_paused_scheduled_campaign_resumes_as_scheduled(complete_draft):
    command("send_campaign", complete_draft.pk, at="2030-12-01 10:00")
    command("pause_campaign", complete_draft.pk)

    command("resume_campaign", complete_draft.pk)

    complete_draft.refresh_from_db()
    assert complete_draft.status == C.SCHEDULED
    assert complete_draft.scheduled_at == datetime.datetime(2030, 12, 1, 4, 30, tzinfo=UTC)


# --- duplicate ------------------------------------------------------------------------------------


def test_duplicate_copies_message_account_and_lists_as_a_new_draft(engine):
    lists = [engine.contact_list("a@example.org", name="First"), engine.contact_list("b@example.org", name="Second")]
    original = engine.campaign(
        *lists,
        name="Autumn news",
        subject="Hi {{ name }}",
        body_html="<p>Autumn</p>",
        body_text="Autumn",
        track_opens=False,
        track_clicks=True,
    )
    engine.send_now(original)
    engine.tick()

    copy = lifecycle.duplicate(campaign=original)

    assert copy.pk != original.pk
    assert copy.name == "Autumn news (copy)"
    assert (copy.owner, copy.smtp_account) == (original.owner, original.smtp_account)
    assert (copy.subject, copy.body_html, copy.body_text) == ("Hi {{ name }}", "<p>Autumn</p>", "Autumn")
    assert (copy.track_opens, copy.track_clicks) == (False, True)
    assert set(copy.lists.all()) == set(lists)
    assert (copy.status, copy.scheduled_at, copy.started_at, copy.completed_at) == (C.DRAFT, None, None, None)
    assert not copy.emails.exists()
    original.refresh_from_db()
    assert original.status == C.COMPLETED


# --- retry_failed ---------------------------------------------------------------------------------


def test_retry_failed_resends_only_the_failed_rows_selected_then_all(make_engine):
    refused = ("x@example.org", "y@example.org", "z@example.org")
    rejected = {a: (550, "5.7.1 Message rejected by policy") for a in refused}
    engine = make_engine(RecordingHandler(data_replies=dict(rejected)))
    campaign = engine.campaign(engine.contact_list("ok@example.org", *rejected))
    engine.send_now(campaign)
    engine.tick()
    campaign.refresh_from_db()
    assert campaign.status == C.COMPLETED
    assert engine.statuses(campaign) == {
        "ok@example.org": S.SENT,
        "x@example.org": S.FAILED,
        "y@example.org": S.FAILED,
        "z@example.org": S.FAILED,
    }
    engine.handler.data_replies.clear()  # the policy problem is fixed

    chosen = engine.email(campaign, "x@example.org")
    not_failed = engine.email(campaign, "ok@example.org")
    assert lifecycle.retry_failed(campaign=campaign, email_ids=[chosen.pk, not_failed.pk], now=engine.clock()) == 1
    campaign.refresh_from_db()
    assert campaign.status == C.SENDING and campaign.completed_at is None
    engine.clock.advance(seconds=10)
    engine.tick()

    assert engine.handler.delivered_to() == ["ok@example.org", "x@example.org"]
    assert engine.statuses(campaign)["y@example.org"] == S.FAILED
    email = engine.email(campaign, "x@example.org")
    # A fresh ladder: attempts restarted at 0 on retry, so this is its first attempt again.
    assert (email.status, email.smtp_code, email.failure_class, email.attempts) == (S.SENT, 250, "", 1)

    assert lifecycle.retry_failed(campaign=campaign, now=engine.clock()) == 2
    engine.clock.advance(seconds=10)
    engine.tick()

    assert sorted(engine.handler.delivered_to()) == ["ok@example.org", *refused]
    assert set(engine.statuses(campaign).values()) == {S.SENT}
    campaign.refresh_from_db()
    assert campaign.status == C.COMPLETED


def test_retry_failed_leaves_bounced_and_unsubscribed_contacts_alone(make_engine):
    engine = make_engine(RecordingHandler(rcpt_replies={"gone@example.org": (550, "5.1.1 User unknown")}))
    campaign = engine.campaign(engine.contact_list("gone@example.org", "fine@example.org"))
    engine.send_now(campaign)
    engine.tick()

    assert lifecycle.retry_failed(campaign=campaign, now=engine.clock()) == 0
    campaign.refresh_from_db()
    assert campaign.status == C.COMPLETED
    assert engine.statuses(campaign)["gone@example.org"] == S.FAILED


# --- remove_pending -------------------------------------------------------------------------------


def test_remove_pending_cancels_the_chosen_pending_rows_and_they_are_never_sent(engine):
    addresses = ["a@example.org", "b@example.org", "c@example.org", "d@example.org"]
    campaign = engine.campaign(engine.contact_list(*addresses))
    engine.send_now(campaign)
    chosen = [engine.email(campaign, "b@example.org").pk, engine.email(campaign, "d@example.org").pk]

    assert lifecycle.remove_pending(campaign=campaign, email_ids=chosen, now=engine.clock()) == (2, 0)
    engine.tick()

    assert engine.statuses(campaign) == {
        "a@example.org": S.SENT,
        "b@example.org": S.CANCELLED,
        "c@example.org": S.SENT,
        "d@example.org": S.CANCELLED,
    }
    assert sorted(engine.handler.delivered_to()) == ["a@example.org", "c@example.org"]
    # A sent row is not "removed": it stays sent.
    assert lifecycle.remove_pending(campaign=campaign, email_ids=[engine.email(campaign, "a@example.org").pk]) == (0, 0)
    assert engine.statuses(campaign)["a@example.org"] == S.SENT


def test_remove_pending_leaves_queued_rows_to_their_worker_and_counts_them(engine):
    campaign, claimed = engine.claimed_campaign(["a@example.org", "b@example.org"])
    campaign.lists.first().contacts.add(ContactFactory(owner=engine.owner, email="c@example.org"))
    lifecycle.extend_to_new_contacts(campaign=campaign, now=engine.clock())
    chosen = [engine.email(campaign, address).pk for address in ("a@example.org", "c@example.org")]

    assert lifecycle.remove_pending(campaign=campaign, email_ids=chosen, now=engine.clock()) == (1, 1)

    assert engine.statuses(campaign) == {
        "a@example.org": S.QUEUED,
        "b@example.org": S.QUEUED,
        "c@example.org": S.CANCELLED,
    }
    engine.send_batch(claimed[0])
    engine.tick()
    assert sorted(engine.handler.delivered_to()) == ["a@example.org", "b@example.org"]


def test_remove_pending_only_touches_its_own_campaign(engine):
    contacts = engine.contact_list("a@example.org")
    first, second = engine.campaign(contacts), engine.campaign(contacts)
    engine.send_now(first), engine.send_now(second)

    lifecycle.remove_pending(campaign=first, email_ids=[engine.email(second, "a@example.org").pk])

    assert engine.statuses(second) == {"a@example.org": S.PENDING}


# --- extend_to_new_contacts -----------------------------------------------------------------------


def test_extend_to_new_contacts_adds_only_those_added_since_and_never_resends(engine):
    contacts = engine.contact_list("early1@example.org", "early2@example.org")
    campaign = engine.campaign(contacts)
    engine.send_now(campaign)
    engine.tick()
    campaign.refresh_from_db()
    assert campaign.status == C.COMPLETED

    contacts.contacts.add(
        ContactFactory(owner=engine.owner, email="late@example.org"),
        ContactFactory(owner=engine.owner, email="late-unsub@example.org", status=Contact.Status.UNSUBSCRIBED),
    )
    engine.clock.advance(minutes=5)
    assert lifecycle.extend_to_new_contacts(campaign=campaign, now=engine.clock()) == 1
    campaign.refresh_from_db()
    assert campaign.status == C.SENDING
    engine.tick()

    assert sorted(engine.handler.delivered_to()) == ["early1@example.org", "early2@example.org", "late@example.org"]
    assert set(engine.emails(campaign)) == {"early1@example.org", "early2@example.org", "late@example.org"}
    campaign.refresh_from_db()
    assert campaign.status == C.COMPLETED

    # Nothing new: nothing added, nobody re-sent.
    assert lifecycle.extend_to_new_contacts(campaign=campaign, now=engine.clock()) == 0
    engine.tick()
    assert len(engine.handler.delivered_to()) == 3


def test_extend_refuses_a_campaign_that_never_started(complete_draft):
    with pytest.raises(lifecycle.LifecycleError, match="Only a started campaign can be extended"):
        lifecycle.extend_to_new_contacts(campaign=complete_draft)


def test_retry_failed_refuses_a_cancelled_campaign_and_keeps_its_failure_record(db):
    campaign = CampaignFactory()
    email = campaign.emails.create(
        to_email="x@example.org", status=Email.Status.FAILED, attempts=4, failure_class="throttled"
    )
    lifecycle.cancel(campaign=campaign)

    with pytest.raises(lifecycle.LifecycleError, match="cancelled campaign"):
        lifecycle.retry_failed(campaign=campaign)

    email.refresh_from_db()
    assert (email.status, email.attempts, email.failure_class) == (Email.Status.FAILED, 4, "throttled")


def test_unschedule_returns_a_scheduled_campaign_to_draft_and_nothing_else(db):
    contact_list = ContactListFactory()
    campaign = CampaignFactory(owner=contact_list.owner, lists=[contact_list])
    lifecycle.schedule(campaign=campaign, at=timezone.now() + datetime.timedelta(days=1))

    assert lifecycle.unschedule(campaign=campaign).status == Campaign.Status.DRAFT
    with pytest.raises(lifecycle.LifecycleError, match="Only a scheduled campaign"):
        lifecycle.unschedule(campaign=campaign)


def test_a_draft_whose_template_is_broken_cannot_be_scheduled(db):
    contact_list = ContactListFactory()
    campaign = CampaignFactory(owner=contact_list.owner, lists=[contact_list], body_html="<p>Hi {% load static %}</p>")

    with pytest.raises(lifecycle.LifecycleError, match="fix the HTML body"):
        lifecycle.schedule(campaign=campaign)
    campaign.refresh_from_db()
    assert campaign.status == Campaign.Status.DRAFT
