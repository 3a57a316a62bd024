"""The campaign and email admin: its actions, frozen fields and delete rules, through the real admin.

Every test drives the Django admin with the test client as a marketer would:
actions are POSTs to the changelist with `action` and `_selected_action`, and
the outcome is read back from the database and the messages the admin shows.
Alice (`marketer`) owns everything; mallory (`other_marketer`) tries to act on it.
"""

import datetime

import pytest
from django.urls import reverse
from django.utils import timezone

from campaigns.models import Campaign, Email
from campaigns.services import lifecycle
from contacts.models import Contact
from delivery import dispatcher
from tests.factories import (
    CampaignFactory,
    ContactFactory,
    ContactListFactory,
    EmailFactory,
    EventFactory,
    LinkFactory,
    SmtpAccountFactory,
)
from tracking.models import Event, Link

pytestmark = pytest.mark.django_db

C = Campaign.Status
S = Email.Status
UTC = datetime.UTC

CAMPAIGNS = reverse("admin:campaigns_campaign_changelist")
EMAILS = reverse("admin:campaigns_email_changelist")


def act(client, changelist, action, *objects):
    """Run an admin action on `objects` (or raw ids) and return (response, [(level_tag, text)]).

    Confirmed as its intermediate page's "Yes" does (post=yes), for the actions that ask first."""
    ids = [getattr(o, "pk", o) for o in objects]
    # Followed to the changelist, as a browser does: the page shows (and so uses up) the messages.
    response = client.post(changelist, {"action": action, "_selected_action": ids, "post": "yes"}, follow=True)
    assert response.redirect_chain and response.status_code == 200, response.content[:2000]
    shown = [(m.level_tag, m.message) for m in response.context["messages"]]
    return response, shown


def errors(shown):
    return [text for level, text in shown if level == "error"]


def successes(shown):
    return [text for level, text in shown if level == "success"]


def change_url(campaign):
    return reverse("admin:campaigns_campaign_change", args=[campaign.pk])


def delete_url(campaign):
    return reverse("admin:campaigns_campaign_delete", args=[campaign.pk])


def snapshot(campaign):
    """Everything about a campaign and its rows an action could change."""
    campaign.refresh_from_db()
    fields = (
        "status",
        "status_reason",
        "scheduled_at",
        "started_at",
        "completed_at",
        "subject",
        "body_html",
        "smtp_account_id",
        "name",
    )
    rows = list(
        Email.objects.filter(campaign=campaign)
        .order_by("pk")
        .values_list("pk", "to_email", "status", "attempts", "updated_at")
    )
    return {f: getattr(campaign, f) for f in fields}, sorted(campaign.lists.values_list("pk", flat=True)), rows


@pytest.fixture
def account(marketer):
    return SmtpAccountFactory(owner=marketer, name="Alice relay")


@pytest.fixture
def audience(marketer):
    """A list of two subscribed contacts and one unsubscribed one."""
    return ContactListFactory(
        owner=marketer,
        name="Alice readers",
        contacts=[
            ContactFactory(owner=marketer, email="ann@example.org"),
            ContactFactory(owner=marketer, email="bob@example.org"),
            ContactFactory(owner=marketer, email="gone@example.org", status=Contact.Status.UNSUBSCRIBED),
        ],
    )


@pytest.fixture
def ready_draft(marketer, account, audience):
    return CampaignFactory(owner=marketer, name="Alice autumn", smtp_account=account, lists=[audience])


def started(campaign):
    """A campaign sending to its lists, as the send-now service leaves it."""
    lifecycle.send_now(campaign=campaign)
    campaign.refresh_from_db()
    assert campaign.status == C.SENDING
    return campaign


def set_statuses(campaign, **by_address):
    """Put rows in the state a finished send would leave them (test set-up, not admin code)."""
    for address, status in by_address.items():
        Email.objects.filter(campaign=campaign, to_email=address).update(status=status, attempts=1)


def completed(campaign, **by_address):
    started(campaign)
    set_statuses(campaign, **by_address)
    Campaign.objects.filter(pk=campaign.pk).update(status=C.COMPLETED, completed_at=timezone.now())
    campaign.refresh_from_db()
    return campaign


def statuses(campaign):
    return dict(Email.objects.filter(campaign=campaign).values_list("to_email", "status"))


# --- send now ----------------------------------------------------------------------------------------


def test_send_now_starts_a_ready_draft_with_its_recipients_materialised(marketer_client, ready_draft):
    _, shown = act(marketer_client, CAMPAIGNS, "send_now", ready_draft)

    ready_draft.refresh_from_db()
    assert ready_draft.status == C.SENDING
    assert ready_draft.started_at is not None and ready_draft.scheduled_at is not None
    # Subscribed contacts only, one pending row each.
    assert statuses(ready_draft) == {"ann@example.org": S.PENDING, "bob@example.org": S.PENDING}
    assert successes(shown) == ["1 campaign(s) started."]
    assert errors(shown) == []


@pytest.mark.parametrize(
    ("missing", "message"),
    [
        ("smtp_account", "choose an SMTP account"),
        ("subject", "write a subject"),
        ("body", "write a body"),
        ("lists", "choose at least one contact list or segment"),
    ],
)
def test_send_now_on_an_incomplete_draft_names_what_is_missing_and_changes_nothing(
    marketer_client, ready_draft, missing, message
):
    if missing == "smtp_account":
        ready_draft.smtp_account = None
    elif missing == "subject":
        ready_draft.subject = ""
    elif missing == "body":
        ready_draft.body_html = ""
        ready_draft.body_text = ""
    else:
        ready_draft.lists.clear()
    ready_draft.save()
    before = snapshot(ready_draft)

    _, shown = act(marketer_client, CAMPAIGNS, "send_now", ready_draft)

    assert snapshot(ready_draft) == before
    assert ready_draft.status == C.DRAFT
    assert not Email.objects.filter(campaign=ready_draft).exists()
    assert errors(shown) == [f"Alice autumn: Cannot schedule: {message}."]
    assert successes(shown) == []


def test_send_now_on_a_draft_missing_everything_lists_every_problem(marketer_client, marketer):
    empty = CampaignFactory(owner=marketer, name="Empty", smtp_account=None, subject="", body_html="")

    _, shown = act(marketer_client, CAMPAIGNS, "send_now", empty)

    assert errors(shown) == [
        "Empty: Cannot schedule: choose an SMTP account; write a subject; write a body; "
        "choose at least one contact list or segment."
    ]
    empty.refresh_from_db()
    assert empty.status == C.DRAFT


def test_send_now_on_some_campaigns_starts_the_ready_ones_and_reports_the_others(
    marketer_client, marketer, ready_draft
):
    no_subject = CampaignFactory(owner=marketer, name="No subject", subject="", lists=list(ready_draft.lists.all()))

    _, shown = act(marketer_client, CAMPAIGNS, "send_now", ready_draft, no_subject)

    ready_draft.refresh_from_db(), no_subject.refresh_from_db()
    assert (ready_draft.status, no_subject.status) == (C.SENDING, C.DRAFT)
    assert errors(shown) == ["No subject: Cannot schedule: write a subject."]
    assert successes(shown) == ["1 campaign(s) started."]


# --- schedule ----------------------------------------------------------------------------------------


def test_saving_a_time_on_the_change_form_neither_schedules_nor_stores_it(marketer_client, ready_draft):
    # The time is set on Review and send (tests/campaigns/test_review.py), with its checks: the form
    # shows it read-only with the way there, so "changed successfully" never reads as "scheduled".
    page = marketer_client.get(change_url(ready_draft))
    assert "scheduled_at" not in page.context["adminform"].form.fields
    assert "Schedule it from Review and send" in page.content.decode()

    response = marketer_client.post(
        change_url(ready_draft), draft_form_data(ready_draft, scheduled_at_0="2030-12-01", scheduled_at_1="10:00")
    )

    assert response.status_code == 302, form_errors(response)
    ready_draft.refresh_from_db()
    assert (ready_draft.status, ready_draft.scheduled_at) == (C.DRAFT, None)


def test_schedule_without_a_time_schedules_for_now(marketer_client, ready_draft):
    before = timezone.now()

    act(marketer_client, CAMPAIGNS, "schedule", ready_draft)

    ready_draft.refresh_from_db()
    assert ready_draft.status == C.SCHEDULED
    assert before <= ready_draft.scheduled_at <= timezone.now()


def test_schedule_refuses_a_scheduled_time_in_the_past_and_keeps_the_draft(marketer_client, ready_draft):
    # Saved on the form with a typo in the year; the action must not send it at once.
    ready_draft.scheduled_at = datetime.datetime(2020, 1, 1, 4, 30, tzinfo=UTC)
    ready_draft.save()
    before = snapshot(ready_draft)

    _, shown = act(marketer_client, CAMPAIGNS, "schedule", ready_draft)

    assert errors(shown) == [
        "Alice autumn: Cannot schedule: 2020-01-01 10:00 Asia/Kolkata is in the past; choose a later time, "
        "or use Send now to send at once."
    ]
    assert successes(shown) == []
    assert snapshot(ready_draft) == before
    dispatcher.tick(enqueue=lambda batch_id: None)
    assert not Email.objects.filter(campaign=ready_draft).exists()


def test_schedule_of_a_campaign_started_long_ago_says_it_is_not_a_draft(marketer_client, ready_draft):
    started(ready_draft)
    Campaign.objects.filter(pk=ready_draft.pk).update(scheduled_at=timezone.now() - datetime.timedelta(hours=2))

    _, shown = act(marketer_client, CAMPAIGNS, "schedule", ready_draft)

    assert errors(shown) == ["Alice autumn: Only a draft can be scheduled; this campaign is sending."]


def test_schedule_refuses_an_incomplete_draft_and_a_campaign_already_started(marketer_client, marketer, ready_draft):
    no_list = CampaignFactory(owner=marketer, name="No list")
    started(ready_draft)

    _, shown = act(marketer_client, CAMPAIGNS, "schedule", no_list, ready_draft)

    assert sorted(errors(shown)) == [
        "Alice autumn: Only a draft can be scheduled; this campaign is sending.",
        "No list: Cannot schedule: choose at least one contact list or segment.",
    ]
    assert successes(shown) == []
    no_list.refresh_from_db(), ready_draft.refresh_from_db()
    assert (no_list.status, ready_draft.status) == (C.DRAFT, C.SENDING)


# --- pause, resume, cancel ---------------------------------------------------------------------------


def test_pause_then_resume_a_sending_campaign(marketer_client, ready_draft):
    started(ready_draft)

    _, shown = act(marketer_client, CAMPAIGNS, "pause", ready_draft)
    ready_draft.refresh_from_db()
    assert (ready_draft.status, ready_draft.status_reason) == (C.PAUSED, "Paused by the owner")
    assert successes(shown) == ["1 campaign(s) paused."]
    # Pausing keeps the rows: they are sent after resuming.
    assert set(statuses(ready_draft).values()) == {S.PENDING}

    _, shown = act(marketer_client, CAMPAIGNS, "resume", ready_draft)
    ready_draft.refresh_from_db()
    assert (ready_draft.status, ready_draft.status_reason) == (C.SENDING, "")
    assert successes(shown) == ["1 campaign(s) resumed."]


def test_a_paused_scheduled_campaign_resumes_as_scheduled(marketer_client, ready_draft):
    lifecycle.schedule(campaign=ready_draft, at=timezone.now() + datetime.timedelta(days=1))

    act(marketer_client, CAMPAIGNS, "pause", ready_draft)
    ready_draft.refresh_from_db()
    assert ready_draft.status == C.PAUSED

    act(marketer_client, CAMPAIGNS, "resume", ready_draft)
    ready_draft.refresh_from_db()
    assert ready_draft.status == C.SCHEDULED


def test_pause_and_resume_refuse_the_wrong_states(marketer_client, marketer, ready_draft):
    draft = CampaignFactory(owner=marketer, name="Still a draft")
    started(ready_draft)

    _, shown = act(marketer_client, CAMPAIGNS, "pause", draft, ready_draft)
    assert errors(shown) == ["Still a draft: Only a sending or scheduled campaign can be paused; this one is draft."]
    assert successes(shown) == ["1 campaign(s) paused."]

    # ready_draft is paused now; resuming the draft is refused, the paused one resumes.
    _, shown = act(marketer_client, CAMPAIGNS, "resume", draft, ready_draft)
    assert errors(shown) == ["Still a draft: Only a paused campaign can be resumed; this one is draft."]
    assert successes(shown) == ["1 campaign(s) resumed."]

    _, shown = act(marketer_client, CAMPAIGNS, "resume", ready_draft)
    assert errors(shown) == ["Alice autumn: Only a paused campaign can be resumed; this one is sending."]
    assert successes(shown) == []
    draft.refresh_from_db(), ready_draft.refresh_from_db()
    assert (draft.status, ready_draft.status) == (C.DRAFT, C.SENDING)


def test_cancel_drops_unsent_rows_and_keeps_sent_ones(marketer_client, ready_draft):
    started(ready_draft)
    set_statuses(ready_draft, **{"ann@example.org": S.SENT})

    _, shown = act(marketer_client, CAMPAIGNS, "cancel", ready_draft)

    ready_draft.refresh_from_db()
    assert ready_draft.status == C.CANCELLED and ready_draft.completed_at is not None
    assert statuses(ready_draft) == {"ann@example.org": S.SENT, "bob@example.org": S.CANCELLED}
    assert successes(shown) == ["1 campaign(s) cancelled."]


def test_cancel_refuses_a_finished_campaign(marketer_client, ready_draft):
    completed(ready_draft, **{"ann@example.org": S.SENT, "bob@example.org": S.SENT})
    before = snapshot(ready_draft)

    _, shown = act(marketer_client, CAMPAIGNS, "cancel", ready_draft)

    assert errors(shown) == ["Alice autumn: This campaign is completed and cannot be cancelled."]
    assert successes(shown) == []
    assert snapshot(ready_draft) == before


# --- duplicate ---------------------------------------------------------------------------------------


def test_duplicate_makes_a_new_draft_copy_with_the_same_lists(marketer_client, marketer, ready_draft, audience):
    second_list = ContactListFactory(owner=marketer, name="Alice second list")
    ready_draft.lists.add(second_list)
    ready_draft.body_text = "Plain words"
    ready_draft.track_opens = False
    ready_draft.save()
    completed(ready_draft, **{"ann@example.org": S.SENT, "bob@example.org": S.SENT})

    _, shown = act(marketer_client, CAMPAIGNS, "duplicate", ready_draft)

    copy = Campaign.objects.exclude(pk=ready_draft.pk).get()
    assert copy.name == "Alice autumn (copy)"
    assert copy.owner == marketer
    assert copy.status == C.DRAFT
    assert (copy.scheduled_at, copy.started_at, copy.completed_at) == (None, None, None)
    assert (copy.smtp_account, copy.subject, copy.body_html, copy.body_text) == (
        ready_draft.smtp_account,
        ready_draft.subject,
        ready_draft.body_html,
        "Plain words",
    )
    assert (copy.track_opens, copy.track_clicks) == (False, True)
    assert set(copy.lists.all()) == {audience, second_list}
    assert not copy.emails.exists()
    assert successes(shown) == [f'Campaign “<a href="{change_url(copy)}">Alice autumn (copy)</a>” created.']
    # The original is untouched.
    ready_draft.refresh_from_db()
    assert ready_draft.status == C.COMPLETED
    assert len(statuses(ready_draft)) == 2


def test_copies_of_copies_are_numbered_not_stacked(marketer_client, marketer, ready_draft):
    act(marketer_client, CAMPAIGNS, "duplicate", ready_draft)
    first = Campaign.objects.get(name="Alice autumn (copy)")
    act(marketer_client, CAMPAIGNS, "duplicate", first)
    act(marketer_client, CAMPAIGNS, "duplicate", ready_draft)
    _, shown = act(marketer_client, CAMPAIGNS, "duplicate", Campaign.objects.get(name="Alice autumn (copy 2)"))

    assert sorted(Campaign.objects.values_list("name", flat=True)) == [
        "Alice autumn",
        "Alice autumn (copy 2)",
        "Alice autumn (copy 3)",
        "Alice autumn (copy 4)",
        "Alice autumn (copy)",
    ]
    assert "Alice autumn (copy 4)</a>” created." in successes(shown)[0]


def test_another_marketers_copies_do_not_take_a_number(marketer_client, marketer, other_marketer, ready_draft):
    CampaignFactory(owner=other_marketer, name="Alice autumn (copy)")

    act(marketer_client, CAMPAIGNS, "duplicate", ready_draft)

    assert Campaign.objects.filter(owner=marketer, name="Alice autumn (copy)").exists()


def test_a_copy_of_a_name_at_its_longest_still_fits(marketer_client, marketer, ready_draft):
    ready_draft.name = "N" * 200
    ready_draft.save()

    act(marketer_client, CAMPAIGNS, "duplicate", ready_draft)
    act(marketer_client, CAMPAIGNS, "duplicate", ready_draft)

    names = set(Campaign.objects.exclude(pk=ready_draft.pk).values_list("name", flat=True))
    stem = "N" * (200 - len(" (copy 99999)"))
    assert names == {f"{stem} (copy)", f"{stem} (copy 2)"}


# --- retry failed ------------------------------------------------------------------------------------


def test_retry_failed_moves_failed_rows_back_to_pending_and_reopens_a_completed_campaign(marketer_client, ready_draft):
    completed(ready_draft, **{"ann@example.org": S.SENT, "bob@example.org": S.FAILED})
    Email.objects.filter(campaign=ready_draft, to_email="bob@example.org").update(
        attempts=3, failure_class=Email.FailureClass.REJECTED
    )

    _, shown = act(marketer_client, CAMPAIGNS, "retry_failed", ready_draft)

    ready_draft.refresh_from_db()
    assert ready_draft.status == C.SENDING and ready_draft.completed_at is None
    assert statuses(ready_draft) == {"ann@example.org": S.SENT, "bob@example.org": S.PENDING}
    bob = Email.objects.get(campaign=ready_draft, to_email="bob@example.org")
    assert (bob.attempts, bob.failure_class) == (0, "")
    assert successes(shown) == ["1 failed email(s) will be sent again."]


def test_retry_failed_with_nothing_failed_leaves_a_completed_campaign_completed(marketer_client, ready_draft):
    completed(ready_draft, **{"ann@example.org": S.SENT, "bob@example.org": S.SENT})
    before = snapshot(ready_draft)

    _, shown = act(marketer_client, CAMPAIGNS, "retry_failed", ready_draft)

    assert snapshot(ready_draft) == before
    assert successes(shown) == ["0 failed email(s) will be sent again."]


def test_retry_failed_refuses_a_cancelled_campaign_and_keeps_its_failure_record(marketer_client, ready_draft):
    started(ready_draft)
    set_statuses(ready_draft, **{"ann@example.org": S.SENT, "bob@example.org": S.FAILED})
    Email.objects.filter(campaign=ready_draft, to_email="bob@example.org").update(
        smtp_code=550, failure_class=Email.FailureClass.REJECTED
    )
    lifecycle.cancel(campaign=ready_draft)

    _, shown = act(marketer_client, CAMPAIGNS, "retry_failed", ready_draft)
    # The dispatcher's next tick cancels whatever a cancelled campaign still has open.
    dispatcher.tick(enqueue=lambda batch_id: None)

    ready_draft.refresh_from_db()
    assert ready_draft.status == C.CANCELLED
    bob = Email.objects.get(campaign=ready_draft, to_email="bob@example.org")
    assert (bob.status, bob.failure_class, bob.attempts) == (S.FAILED, Email.FailureClass.REJECTED, 1)
    assert errors(shown) == ["Alice autumn: a cancelled campaign sends nothing more; duplicate it to send again."]
    assert successes(shown) == []


# --- extend ------------------------------------------------------------------------------------------


def test_extend_adds_only_contacts_added_since_and_never_touches_existing_rows(
    marketer_client, marketer, ready_draft, audience
):
    started(ready_draft)
    set_statuses(ready_draft, **{"ann@example.org": S.SENT, "bob@example.org": S.FAILED})
    existing = snapshot(ready_draft)[2]
    audience.contacts.add(
        ContactFactory(owner=marketer, email="new@example.org"),
        ContactFactory(owner=marketer, email="new-unsub@example.org", status=Contact.Status.UNSUBSCRIBED),
    )

    _, shown = act(marketer_client, CAMPAIGNS, "extend", ready_draft)

    rows = snapshot(ready_draft)[2]
    assert [r for r in rows if r[1] != "new@example.org"] == existing
    assert statuses(ready_draft) == {
        "ann@example.org": S.SENT,
        "bob@example.org": S.FAILED,
        "new@example.org": S.PENDING,
    }
    assert successes(shown) == ["1 new recipient(s) added."]

    # Again: nobody new, nothing touched.
    again = snapshot(ready_draft)
    _, shown = act(marketer_client, CAMPAIGNS, "extend", ready_draft)
    assert snapshot(ready_draft) == again
    assert successes(shown) == ["0 new recipient(s) added."]


def test_extend_reopens_a_completed_campaign_for_the_new_contacts(marketer_client, marketer, ready_draft, audience):
    completed(ready_draft, **{"ann@example.org": S.SENT, "bob@example.org": S.SENT})
    audience.contacts.add(ContactFactory(owner=marketer, email="late@example.org"))

    act(marketer_client, CAMPAIGNS, "extend", ready_draft)

    ready_draft.refresh_from_db()
    assert ready_draft.status == C.SENDING and ready_draft.completed_at is None
    assert statuses(ready_draft)["late@example.org"] == S.PENDING


def test_extend_refuses_a_draft(marketer_client, ready_draft):
    _, shown = act(marketer_client, CAMPAIGNS, "extend", ready_draft)

    assert errors(shown) == ["Alice autumn: Only a started campaign can be extended."]
    ready_draft.refresh_from_db()
    assert ready_draft.status == C.DRAFT
    assert not Email.objects.filter(campaign=ready_draft).exists()


# --- email actions -----------------------------------------------------------------------------------


@pytest.fixture
def ledger(marketer, account):
    """A completed campaign with three failed rows, two pending ones in another, and sent rows in both."""
    finished = CampaignFactory(
        owner=marketer,
        name="Finished",
        smtp_account=account,
        status=C.COMPLETED,
        started_at=timezone.now(),
        completed_at=timezone.now(),
    )
    running = CampaignFactory(
        owner=marketer, name="Running", smtp_account=account, status=C.SENDING, started_at=timezone.now()
    )
    rows = {}
    for campaign, address, status in [
        (finished, "f1@example.org", S.FAILED),
        (finished, "f2@example.org", S.FAILED),
        (finished, "f3@example.org", S.FAILED),
        (finished, "s1@example.org", S.SENT),
        (running, "p1@example.org", S.PENDING),
        (running, "p2@example.org", S.PENDING),
        (running, "s2@example.org", S.SENT),
    ]:
        rows[address] = EmailFactory(
            campaign=campaign, contact=ContactFactory(owner=marketer, email=address), status=status, attempts=1
        )
    return finished, running, rows


def email_statuses():
    return dict(Email.objects.values_list("to_email", "status"))


def test_retry_selected_emails_retries_only_the_chosen_failed_rows(marketer_client, ledger):
    finished, running, rows = ledger

    _, shown = act(
        marketer_client,
        EMAILS,
        "retry_selected_emails",
        rows["f1@example.org"],
        rows["f3@example.org"],
        rows["s1@example.org"],
    )

    assert email_statuses() == {
        "f1@example.org": S.PENDING,
        "f2@example.org": S.FAILED,
        "f3@example.org": S.PENDING,
        "s1@example.org": S.SENT,
        "p1@example.org": S.PENDING,
        "p2@example.org": S.PENDING,
        "s2@example.org": S.SENT,
    }
    assert successes(shown) == ["2 failed email(s) will be sent again."]
    finished.refresh_from_db()
    assert finished.status == C.SENDING and finished.completed_at is None


def test_retry_selected_emails_skips_rows_of_a_cancelled_campaign(marketer_client, ledger):
    finished, running, rows = ledger
    failed_in_running = EmailFactory(
        campaign=running,
        contact=ContactFactory(owner=running.owner, email="f4@example.org"),
        status=S.FAILED,
        attempts=1,
        failure_class=Email.FailureClass.REJECTED,
    )
    lifecycle.cancel(campaign=running)

    _, shown = act(marketer_client, EMAILS, "retry_selected_emails", rows["f1@example.org"], failed_in_running)
    assert Email.objects.get(pk=rows["f1@example.org"].pk).status == S.PENDING
    dispatcher.tick(enqueue=lambda batch_id: None)

    failed_in_running.refresh_from_db()
    assert (failed_in_running.status, failed_in_running.failure_class) == (S.FAILED, Email.FailureClass.REJECTED)
    assert errors(shown) == ["Running: a cancelled campaign sends nothing more; duplicate it to send again."]
    assert successes(shown) == ["1 failed email(s) will be sent again."]


def test_remove_selected_pending_cancels_the_chosen_pending_rows_and_leaves_sent_ones(marketer_client, ledger):
    finished, running, rows = ledger
    sent_before = Email.objects.get(pk=rows["s2@example.org"].pk).updated_at

    _, shown = act(
        marketer_client,
        EMAILS,
        "remove_selected_pending",
        rows["p1@example.org"],
        rows["s2@example.org"],
        rows["f1@example.org"],
    )

    assert email_statuses() == {
        "f1@example.org": S.FAILED,
        "f2@example.org": S.FAILED,
        "f3@example.org": S.FAILED,
        "s1@example.org": S.SENT,
        "p1@example.org": S.CANCELLED,
        "p2@example.org": S.PENDING,
        "s2@example.org": S.SENT,
    }
    assert Email.objects.get(pk=rows["s2@example.org"].pk).updated_at == sent_before
    assert successes(shown) == ["1 pending recipient(s) removed."]
    running.refresh_from_db()
    assert running.status == C.SENDING


def test_remove_selected_pending_says_how_many_are_in_flight_and_were_left_to_their_batch(marketer_client, engine):
    campaign, claimed = engine.claimed_campaign(["q1@example.org", "q2@example.org"])  # queued, held by a worker
    campaign.lists.first().contacts.add(
        *[ContactFactory(owner=engine.owner, email=f"p{n}@example.org") for n in (1, 2)]
    )
    lifecycle.extend_to_new_contacts(campaign=campaign, now=engine.clock())  # pending
    emails = engine.emails(campaign)

    _, shown = act(marketer_client, EMAILS, "remove_selected_pending", *emails.values())

    assert successes(shown) == ["2 pending recipient(s) removed."]
    assert [text for level, text in shown if level == "warning"] == [
        "2 selected recipient(s) are in flight: a worker holds their batch, so they were not removed and go out "
        "with it. Any that come back unsent (deferred) can be removed then."
    ]
    assert engine.statuses(campaign) == {
        "q1@example.org": S.QUEUED,
        "q2@example.org": S.QUEUED,
        "p1@example.org": S.CANCELLED,
        "p2@example.org": S.CANCELLED,
    }
    # What the message says: the batch sends its rows, and nothing removed goes out after it.
    engine.send_batch(claimed[0])
    engine.tick()
    assert sorted(engine.handler.delivered_to()) == ["q1@example.org", "q2@example.org"]


# --- scoping -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "action",
    ["schedule", "send_now", "pause", "resume", "cancel", "duplicate", "retry_failed", "extend", "delete_selected"],
)
def test_another_marketer_cannot_act_on_alices_campaigns(other_client, marketer, ready_draft, audience, action):
    # One of alice's campaigns in each state an action could apply to.
    sending = started(CampaignFactory(owner=marketer, name="Alice sending", lists=[audience]))
    paused = started(CampaignFactory(owner=marketer, name="Alice paused", lists=[audience]))
    lifecycle.pause(campaign=paused)
    finished = completed(
        CampaignFactory(owner=marketer, name="Alice finished", lists=[audience]),
        **{"ann@example.org": S.FAILED, "bob@example.org": S.SENT},
    )
    audience.contacts.add(ContactFactory(owner=marketer, email="late@example.org"))
    campaigns = [ready_draft, sending, paused, finished]
    before = [snapshot(c) for c in campaigns]
    count = Campaign.objects.count()

    data = {"action": action, "_selected_action": [c.pk for c in campaigns]}
    if action == "delete_selected":
        data["post"] = "yes"
    response = other_client.post(CAMPAIGNS, data)

    assert response.status_code in (200, 302)
    assert Campaign.objects.count() == count
    assert [snapshot(c) for c in campaigns] == before
    assert b"Alice" not in response.content


@pytest.mark.parametrize("action", ["retry_selected_emails", "remove_selected_pending"])
def test_another_marketer_cannot_act_on_alices_emails(other_client, ledger, action):
    before = list(Email.objects.order_by("pk").values_list("pk", "status", "updated_at"))
    finished = ledger[0]

    other_client.post(EMAILS, {"action": action, "_selected_action": [e.pk for e in ledger[2].values()]})

    assert list(Email.objects.order_by("pk").values_list("pk", "status", "updated_at")) == before
    finished.refresh_from_db()
    assert finished.status == C.COMPLETED


# --- change form: frozen once out of draft -----------------------------------------------------------

FROZEN = ("subject", "body_html", "body_text", "lists", "smtp_account", "track_opens", "track_clicks")


def draft_form_data(campaign, **overrides):
    """The change form's POST as a browser sends it for `campaign`."""
    local = timezone.localtime(campaign.scheduled_at) if campaign.scheduled_at else None
    data = {
        "name": campaign.name,
        "smtp_account": campaign.smtp_account_id or "",
        "lists": [str(pk) for pk in campaign.lists.values_list("pk", flat=True)],
        "subject": campaign.subject,
        "body_html": campaign.body_html,
        "body_text": campaign.body_text,
        "scheduled_at_0": local.strftime("%Y-%m-%d") if local else "",
        "scheduled_at_1": local.strftime("%H:%M:%S") if local else "",
    }
    if campaign.track_opens:
        data["track_opens"] = "on"
    if campaign.track_clicks:
        data["track_clicks"] = "on"
    data.update(overrides)
    return data


def read_only_names(adminform):
    """Names of the fields the change page shows as text rather than inputs."""
    return {field.field["name"] for fieldset in adminform for line in fieldset for field in line if field.is_readonly}


def form_errors(response):
    if response.context and "adminform" in response.context:
        return response.context["adminform"].form.errors
    return response.status_code


@pytest.mark.parametrize("state", ["scheduled", "sending", "paused", "completed", "cancelled"])
def test_a_campaign_out_of_draft_shows_its_message_read_only_and_a_post_cannot_change_it(
    marketer_client, marketer, ready_draft, state
):
    other_list = ContactListFactory(owner=marketer, name="Alice other list")
    other_account = SmtpAccountFactory(owner=marketer, name="Alice other relay")
    at = timezone.now() + datetime.timedelta(days=2)
    if state == "scheduled":
        lifecycle.schedule(campaign=ready_draft, at=at)
    else:
        started(ready_draft)
        if state == "paused":
            lifecycle.pause(campaign=ready_draft)
        elif state == "completed":
            completed_now = timezone.now()
            Campaign.objects.filter(pk=ready_draft.pk).update(status=C.COMPLETED, completed_at=completed_now)
        elif state == "cancelled":
            lifecycle.cancel(campaign=ready_draft)
    ready_draft.refresh_from_db()
    assert ready_draft.status == state

    page = marketer_client.get(change_url(ready_draft))
    assert page.status_code == 200
    form = page.context["adminform"].form
    for name in FROZEN:
        assert name not in form.fields, f"{name} is still editable on a {state} campaign"
    assert set(FROZEN) <= read_only_names(page.context["adminform"])
    assert "name" in form.fields  # a label for the marketer's own use stays editable

    before = snapshot(ready_draft)
    response = marketer_client.post(
        change_url(ready_draft),
        draft_form_data(
            ready_draft,
            name="Renamed",
            subject="Changed subject",
            body_html="<p>Changed body</p>",
            body_text="Changed text",
            lists=[str(other_list.pk)],
            smtp_account=str(other_account.pk),
            scheduled_at_0="2031-01-01",
            scheduled_at_1="09:00",
            track_opens="",
        ),
    )
    assert response.status_code == 302, form_errors(response)

    after = snapshot(ready_draft)
    assert after[0].pop("name") == "Renamed"
    before[0].pop("name")
    assert after == before
    ready_draft.refresh_from_db()
    assert ready_draft.track_opens is True


def test_a_draft_stays_editable(marketer_client, marketer, ready_draft):
    other_list = ContactListFactory(owner=marketer, name="Alice other list")
    other_account = SmtpAccountFactory(owner=marketer, name="Alice other relay")

    page = marketer_client.get(change_url(ready_draft))
    form = page.context["adminform"].form
    for name in FROZEN:
        assert name in form.fields, f"{name} is read-only on a draft"

    response = marketer_client.post(
        change_url(ready_draft),
        draft_form_data(
            ready_draft,
            subject="New subject",
            body_html="<p>New body</p>",
            lists=[str(other_list.pk)],
            smtp_account=str(other_account.pk),
        ),
    )
    assert response.status_code == 302, form_errors(response)

    ready_draft.refresh_from_db()
    assert (ready_draft.subject, ready_draft.body_html) == ("New subject", "<p>New body</p>")
    assert list(ready_draft.lists.all()) == [other_list]
    assert ready_draft.smtp_account == other_account
    assert ready_draft.status == C.DRAFT


# --- delete ------------------------------------------------------------------------------------------


def with_tracking(campaign):
    """A link and an event on the campaign's first row: deleting the campaign must take them too."""
    email = Email.objects.filter(campaign=campaign).order_by("pk").first()
    link = LinkFactory(campaign=campaign)
    EventFactory(email=email, kind=Event.Kind.CLICK, link=link)
    return campaign


@pytest.mark.parametrize("state", ["draft", "completed", "cancelled"])
def test_a_marketer_deletes_a_campaign_that_is_not_sending_with_its_emails(marketer_client, ready_draft, state):
    if state == "draft":
        # Drafts rarely have rows, but one that does (set up by hand, say) must still be deletable.
        EmailFactory(campaign=ready_draft, to_email="ann@example.org", contact=None)
    elif state == "completed":
        completed(ready_draft, **{"ann@example.org": S.SENT, "bob@example.org": S.FAILED})
    else:
        started(ready_draft)
        lifecycle.cancel(campaign=ready_draft)
    with_tracking(ready_draft)
    assert Email.objects.filter(campaign=ready_draft).exists()

    page = marketer_client.get(delete_url(ready_draft))
    assert page.status_code == 200
    assert not page.context["perms_lacking"]
    assert not page.context["protected"]

    response = marketer_client.post(delete_url(ready_draft), {"post": "yes"})

    assert response.status_code == 302
    assert not Campaign.objects.filter(pk=ready_draft.pk).exists()
    assert not Email.objects.filter(campaign_id=ready_draft.pk).exists()
    assert not Link.objects.filter(campaign_id=ready_draft.pk).exists()
    assert not Event.objects.exists()
    # The contacts and the list are the marketer's, not the campaign's: they stay.
    assert Contact.objects.filter(email="ann@example.org").exists()


@pytest.mark.parametrize("state", ["sending", "paused"])
def test_bulk_delete_takes_a_paused_campaign_with_its_emails_but_never_a_sending_one(
    marketer_client, ready_draft, state
):
    started(ready_draft)
    if state == "paused":
        lifecycle.pause(campaign=ready_draft)
        response = marketer_client.post(
            CAMPAIGNS, {"action": "delete_selected", "_selected_action": [ready_draft.pk], "post": "yes"}
        )
        assert response.status_code == 302
        assert not Campaign.objects.filter(pk=ready_draft.pk).exists()
        assert not Email.objects.filter(campaign_id=ready_draft.pk).exists()
    else:
        # The bulk action must not get round the rule the delete page enforces: its confirmation
        # page refuses, and a confirming POST is forbidden.
        page = marketer_client.post(CAMPAIGNS, {"action": "delete_selected", "_selected_action": [ready_draft.pk]})
        assert page.status_code == 200
        assert page.context["perms_lacking"] == {"campaign"}
        response = marketer_client.post(
            CAMPAIGNS, {"action": "delete_selected", "_selected_action": [ready_draft.pk], "post": "yes"}
        )
        assert response.status_code == 403
        assert Campaign.objects.filter(pk=ready_draft.pk, status=C.SENDING).exists()
        assert Email.objects.filter(campaign_id=ready_draft.pk).count() == 2


def test_a_sending_campaign_cannot_be_deleted(marketer_client, ready_draft):
    started(ready_draft)

    assert marketer_client.get(delete_url(ready_draft)).status_code == 403
    assert marketer_client.post(delete_url(ready_draft), {"post": "yes"}).status_code == 403

    assert Campaign.objects.filter(pk=ready_draft.pk, status=C.SENDING).exists()
    assert Email.objects.filter(campaign=ready_draft).count() == 2


def test_another_marketers_campaign_delete_page_is_404(other_client, ready_draft):
    completed(ready_draft, **{"ann@example.org": S.SENT, "bob@example.org": S.SENT})

    assert other_client.get(delete_url(ready_draft)).status_code == 404
    assert other_client.post(delete_url(ready_draft), {"post": "yes"}).status_code == 404
    assert Campaign.objects.filter(pk=ready_draft.pk).exists()


def test_send_now_warns_about_a_variable_no_recipient_has(db, marketer, marketer_client):
    from django.contrib.messages import get_messages

    from tests.factories import CampaignFactory, ContactFactory, ContactListFactory

    contact = ContactFactory(owner=marketer, attributes={"City": "Pune"})
    contact_list = ContactListFactory(owner=marketer, contacts=[contact])
    campaign = CampaignFactory(
        owner=marketer, lists=[contact_list], body_html="<p>{{ name }} in {{ City }}, {{ Plan }}</p>"
    )

    response = marketer_client.post(
        "/admin/campaigns/campaign/",
        {"action": "send_now", "_selected_action": [campaign.pk], "post": "yes"},
        follow=True,
    )
    texts = [str(m) for m in get_messages(response.wsgi_request)] or [str(m) for m in response.context["messages"]]
    assert any("No recipient of the chosen lists has {{ Plan }}" in t for t in texts), texts
    assert not any("{{ City }}" in t for t in texts)
