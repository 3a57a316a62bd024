"""The batch sender against a real SMTP server (aiosmtpd) in the test process.

A campaign is started with lifecycle.send_now; dispatcher ticks claim batches and
hand them straight to sender.send_batch. Time is a Clock the test moves by hand
(`now=` for the tick, `clock=` for the sender); pacing waits are recorded, never slept.
"""

import socket
import threading
import uuid
from datetime import timedelta

import pytest
from django.conf import settings
from django.urls import reverse
from django.utils import timezone

from accounts.models import SmtpAccount
from campaigns.delivery import dispatcher, ledger, sender, smtp_session
from campaigns.models import BatchTake, Campaign, Contact, Email
from campaigns.selectors.dashboard import dashboard
from campaigns.services import lifecycle
from tests.factories import CampaignFactory, ContactFactory, ContactListFactory, SmtpAccountFactory
from tests.smtp_server import RecordingHandler

S = Email.Status
OK = "250 2.0.0 OK: queued"  # what RecordingHandler answers to an accepted DATA


# --- one connection per batch, the exact reply stored ------------------------------------------


def test_one_connection_serves_a_whole_batch_and_each_email_keeps_the_servers_reply(engine):
    addresses = [f"reader{i}@example.org" for i in range(6)]
    campaign = engine.campaign(engine.contact_list(*addresses))
    engine.send_now(campaign)

    report = engine.tick()

    assert report.ran and len(report.batches) == 1 and report.claimed == 6
    assert engine.handler.connections == 1
    assert engine.reports[0].connections == 1 and engine.reports[0].sent == 6
    assert sorted(engine.handler.delivered_to()) == sorted(addresses)
    for address, email in engine.emails(campaign).items():
        assert email.status == S.SENT
        assert email.smtp_code == 250
        assert email.smtp_response == OK
        assert email.sent_at == engine.clock()
        assert email.attempts == 1
        assert email.batch_id is None and email.lease_expires_at is None
    # One RCPT per message, and the Message-ID stored is the one sent.
    by_recipient = {m.rcpt_tos[0]: m for m in engine.handler.messages}
    assert all(len(m.rcpt_tos) == 1 for m in engine.handler.messages)
    email = engine.email(campaign, addresses[0])
    assert by_recipient[addresses[0]].parsed()["Message-ID"] == email.message_id
    # Pacing: every message after the first waited its turn (recorded, not slept).
    assert len(engine.sleep.waits) == 5 and all(w > 0 for w in engine.sleep.waits)
    campaign.refresh_from_db()
    assert campaign.status == Campaign.Status.COMPLETED
    # A server offering PIPELINING gets MAIL, RCPT and DATA in one write; others get them one by one.
    assert engine.handler.pipelined_rcpts == (6 if engine.handler.pipelining else 0)


def test_each_message_is_personalised_from_its_own_contact_even_one_deleted_since_the_claim(engine):
    """The sender reads rows and contacts' columns in one plain statement: the right columns go to
    the right recipient, and a contact deleted after the claim still gets its message, unpersonalised."""
    pune = ContactFactory(owner=engine.owner, email="pune@example.org", name="Asha", attributes={"City": "Pune"})
    goa = ContactFactory(owner=engine.owner, email="goa@example.org", name="Ravi", attributes={"City": "Goa"})
    gone = ContactFactory(owner=engine.owner, email="gone@example.org", name="Mira", attributes={"City": "Agra"})
    campaign = engine.campaign(
        ContactListFactory(owner=engine.owner, contacts=[pune, goa, gone]),
        subject="For {{ name }} in {{ City|default:'your town' }}", body_html="<p>Weather in {{ City }}</p>",
    )
    engine.send_now(campaign)

    def delete_then_send(batch_id):
        gone.delete()  # Email.contact is SET_NULL: the row stays, without a contact
        return engine.send_batch(batch_id)

    engine.tick(enqueue=delete_then_send)

    subjects = {m.rcpt_tos[0]: m.parsed()["Subject"] for m in engine.handler.messages}
    assert subjects == {
        "pune@example.org": "For Asha in Pune", "goa@example.org": "For Ravi in Goa",
        "gone@example.org": "For Mira in your town",
    }
    assert engine.statuses(campaign) == dict.fromkeys(subjects, S.SENT)


# --- each row of the classification table ends in the right state -------------------------------

ROWS = [
    # stage, code, text, status, failure_class, contact status
    ("RCPT", 451, "4.7.0 Try again later", S.DEFERRED, "", Contact.Status.SUBSCRIBED),
    ("RCPT", 450, "4.2.1 Mailbox busy", S.DEFERRED, "", Contact.Status.SUBSCRIBED),
    ("RCPT", 452, "4.5.3 Too many recipients", S.DEFERRED, "", Contact.Status.SUBSCRIBED),
    ("DATA", 454, "4.7.0 Temporary authentication failure", S.DEFERRED, "", Contact.Status.SUBSCRIBED),
    ("DATA", 554, "4.4.2 Try again", S.DEFERRED, "", Contact.Status.SUBSCRIBED),
    ("RCPT", 550, "5.1.1 User unknown", S.FAILED, "bounced", Contact.Status.BOUNCED),
    ("RCPT", 553, "5.1.3 Bad recipient address syntax", S.FAILED, "bounced", Contact.Status.BOUNCED),
    ("DATA", 550, "5.2.1 Mailbox disabled", S.FAILED, "bounced", Contact.Status.BOUNCED),
    ("DATA", 550, "5.7.1 Message rejected as spam", S.FAILED, "rejected", Contact.Status.SUBSCRIBED),
    ("DATA", 552, "5.3.4 Message too big", S.FAILED, "rejected", Contact.Status.SUBSCRIBED),
]


@pytest.mark.parametrize(("stage", "code", "text", "status", "failure_class", "contact_status"), ROWS)
def test_each_reply_ends_the_email_in_its_state(make_engine, stage, code, text, status, failure_class, contact_status):
    target = "target@example.org"
    replies = {target: (code, text)}
    handler = RecordingHandler(
        rcpt_replies=replies if stage == "RCPT" else {}, data_replies=replies if stage == "DATA" else {}
    )
    engine = make_engine(handler)
    campaign = engine.campaign(engine.contact_list("before@example.org", target, "after@example.org"))
    engine.send_now(campaign)

    engine.tick()

    email = engine.email(campaign, target)
    assert email.status == status
    assert email.failure_class == failure_class
    assert email.smtp_code == code
    assert email.smtp_response == f"{code} {text}"
    assert email.sent_at is None
    assert email.contact.status == contact_status
    if status == S.DEFERRED:
        assert email.next_attempt_at == engine.clock() + timedelta(seconds=30)
    # The rest of the batch is unaffected and went over the same connection.
    assert engine.statuses(campaign)["before@example.org"] == S.SENT
    assert engine.statuses(campaign)["after@example.org"] == S.SENT
    assert engine.handler.connections == 1
    assert target not in engine.handler.delivered_to()


# --- 451: the retry ladder, then failed ---------------------------------------------------------


def test_a_throttled_email_climbs_the_ladder_then_fails_and_is_never_sent(engine):
    slow = "slow@example.org"
    engine.handler.rcpt_replies[slow] = (451, "4.7.0 Try again later")
    campaign = engine.campaign(engine.contact_list("fine@example.org", slow))
    engine.send_now(campaign)
    start = engine.clock()

    engine.tick()
    email = engine.email(campaign, slow)
    assert (email.status, email.attempts) == (S.DEFERRED, 1)
    assert email.next_attempt_at == start + timedelta(seconds=30)
    assert email.smtp_response == "451 4.7.0 Try again later"
    engine.account.refresh_from_db()
    assert engine.account.throttle_factor < 1.0

    # Not due yet: nothing is claimed.
    engine.clock.advance(seconds=29)
    assert engine.tick().claimed == 0
    assert engine.email(campaign, slow).status == S.DEFERRED

    # Each later rung: 1 minute, then 1 hour.
    for attempts, wait in ((2, 60), (3, 3600)):
        engine.clock.advance(seconds=1 if attempts == 2 else 60)
        assert engine.tick().claimed == 1
        email = engine.email(campaign, slow)
        assert (email.status, email.attempts) == (S.DEFERRED, attempts)
        assert email.next_attempt_at == engine.clock() + timedelta(seconds=wait)
        assert email.sent_at is None

    engine.clock.advance(seconds=3600)
    assert engine.tick().claimed == 1
    email = engine.email(campaign, slow)
    assert email.status == S.FAILED
    assert email.failure_class == Email.FailureClass.THROTTLED
    assert email.sent_at is None and email.next_attempt_at is None
    assert email.smtp_response == "451 4.7.0 Try again later"
    # Four RCPTs refused, never one message accepted for it.
    assert [r[1] for r in engine.handler.refused] == [slow] * 4
    assert slow not in engine.handler.delivered_to()
    campaign.refresh_from_db()
    assert campaign.status == Campaign.Status.COMPLETED
    engine.account.refresh_from_db()
    assert engine.account.throttle_factor == pytest.approx(0.1)  # halved four times, floored at 0.1


# --- 550 5.1.1: bounced and suppressed -----------------------------------------------------------


def test_an_unknown_address_fails_bounces_the_contact_and_is_left_out_of_the_next_campaign(engine):
    gone = "gone@example.org"
    engine.handler.rcpt_replies[gone] = (550, "5.1.1 <gone@example.org>: Recipient address rejected")
    contacts = engine.contact_list("stays@example.org", gone)
    first = engine.campaign(contacts)
    engine.send_now(first)
    engine.tick()

    email = engine.email(first, gone)
    assert email.status == S.FAILED
    assert email.failure_class == Email.FailureClass.BOUNCED
    assert email.smtp_response == "550 5.1.1 <gone@example.org>: Recipient address rejected"
    contact = Contact.objects.get(owner=engine.owner, email=gone)
    assert contact.status == Contact.Status.BOUNCED
    assert contact.status_changed_at == engine.clock()

    second = engine.campaign(contacts)
    engine.send_now(second)
    assert set(engine.emails(second)) == {"stays@example.org"}
    engine.tick()
    assert engine.handler.delivered_to().count("stays@example.org") == 2
    assert gone not in engine.handler.delivered_to()


def test_a_bounce_cancels_the_contacts_unsent_emails_in_its_other_campaigns(engine):
    gone = "gone@example.org"
    engine.handler.rcpt_replies[gone] = (550, "5.1.1 <gone@example.org>: Recipient address rejected")
    contacts = engine.contact_list(gone)
    later = engine.campaign(contacts)
    engine.send_now(later)
    lifecycle.pause(campaign=later, reason="held back")  # its row for the address waits, pending
    first = engine.campaign(contacts)
    engine.send_now(first)
    engine.tick()
    assert engine.statuses(first) == {gone: S.FAILED}
    assert engine.statuses(later) == {gone: S.CANCELLED}


# --- 550 5.4.5: the account's quota ----------------------------------------------------------------


def test_an_account_quota_reply_pauses_the_account_keeps_the_email_and_sends_it_after_the_pause(
    engine, marketer_client
):
    engine.handler.rcpt_replies["second@example.org"] = (550, "5.4.5 Daily user sending quota exceeded.")
    campaign = engine.campaign(engine.contact_list("first@example.org", "second@example.org", "third@example.org"))
    engine.send_now(campaign)

    engine.tick()

    engine.account.refresh_from_db()
    assert engine.account.paused_until == engine.clock() + timedelta(hours=1)
    assert engine.account.pause_reason == "550 5.4.5 Daily user sending quota exceeded."
    assert engine.account.is_paused
    # The owner sees why, in their list of SMTP accounts.
    page = marketer_client.get(reverse("admin:accounts_smtpaccount_changelist"))
    assert "Paused: 550 5.4.5 Daily user sending quota exceeded." in page.content.decode()
    statuses = engine.statuses(campaign)
    assert statuses == {"first@example.org": S.SENT, "second@example.org": S.PENDING, "third@example.org": S.PENDING}
    for address in ("second@example.org", "third@example.org"):
        email = engine.email(campaign, address)
        assert email.attempts == 0 and email.failure_class == "" and email.sent_at is None

    # While paused, nothing is claimed; the quota resets at the provider meanwhile.
    engine.clock.advance(minutes=30)
    assert engine.tick().claimed == 0
    engine.handler.rcpt_replies.clear()

    engine.clock.advance(minutes=31)
    assert engine.tick().claimed == 2
    assert set(engine.statuses(campaign).values()) == {S.SENT}
    assert sorted(engine.handler.delivered_to()) == ["first@example.org", "second@example.org", "third@example.org"]
    assert engine.email(campaign, "second@example.org").attempts == 1


def test_a_sending_quota_reply_at_data_also_pauses_the_account(make_engine):
    engine = make_engine(RecordingHandler(data_replies={"a@example.org": (554, "5.2.0 Sending quota exceeded")}))
    campaign = engine.campaign(engine.contact_list("a@example.org", "b@example.org"))
    engine.send_now(campaign)

    engine.tick()

    engine.account.refresh_from_db()
    assert engine.account.pause_reason == "554 5.2.0 Sending quota exceeded"
    assert engine.statuses(campaign) == {"a@example.org": S.PENDING, "b@example.org": S.PENDING}
    assert engine.handler.messages == []


# --- 535 at login ---------------------------------------------------------------------------------


def test_an_account_pause_is_dated_when_it_happens_on_the_dashboard(engine, marketer):
    engine.handler.rcpt_replies["first@example.org"] = (550, "5.4.5 Daily user sending quota exceeded.")
    engine.send_now(engine.campaign(engine.contact_list("first@example.org")))
    engine.clock.advance(hours=2)
    engine.tick()
    engine.account.refresh_from_db()
    assert engine.account.updated_at == engine.clock()
    paused = [item for item in dashboard(user=marketer, now=engine.clock())["activity"] if item["kind"] == "paused"]
    assert [item["at"] for item in paused] == [engine.clock().isoformat()]


def test_an_authentication_failure_at_login_pauses_the_account_and_keeps_every_email(make_engine):
    handler = RecordingHandler(users={"alice@alice.example": "right-password"})
    engine = make_engine(
        handler, server_kwargs={"auth": True, "auth_require_tls": False},
        username="alice@alice.example", raw_password="wrong-password",
    )
    campaign = engine.campaign(engine.contact_list("a@example.org", "b@example.org"))
    engine.send_now(campaign)

    engine.tick()

    engine.account.refresh_from_db()
    assert engine.account.paused_until == engine.clock() + timedelta(hours=1)
    assert engine.account.pause_reason.startswith("535 ")
    assert "5.7.8" in engine.account.pause_reason
    assert handler.logins and not any(a.success for a in handler.logins)
    for email in engine.emails(campaign).values():
        assert (email.status, email.attempts, email.failure_class) == (S.PENDING, 0, "")
    assert handler.messages == []

    # The owner fixes the password; once the pause passes, everything goes out.
    engine.account.set_password("right-password")
    engine.account.save()
    engine.clock.advance(hours=1, seconds=1)
    engine.tick()
    assert set(engine.statuses(campaign).values()) == {S.SENT}


def test_a_password_no_key_decrypts_pauses_the_account_and_keeps_every_email(make_engine):
    from cryptography.fernet import Fernet
    from django.test import override_settings

    handler = RecordingHandler(users={"alice@alice.example": "right-password"})
    engine = make_engine(
        handler, server_kwargs={"auth": True, "auth_require_tls": False},
        username="alice@alice.example", raw_password="right-password",
    )
    campaign = engine.campaign(engine.contact_list("a@example.org"))
    engine.send_now(campaign)

    with override_settings(FIELD_ENCRYPTION_KEYS=[Fernet.generate_key().decode()]):
        engine.tick()

    engine.account.refresh_from_db()
    assert "cannot be decrypted" in engine.account.pause_reason
    assert handler.logins == [] and handler.messages == []
    assert [(e.status, e.attempts) for e in engine.emails(campaign).values()] == [(S.PENDING, 0)]


# --- 421: defer this one, hand the rest back -----------------------------------------------------


def test_421_defers_the_email_and_hands_the_rest_of_the_batch_back_unspent(engine):
    addresses = ["a@example.org", "b@example.org", "c@example.org", "d@example.org"]
    engine.handler.rcpt_replies["b@example.org"] = (421, "4.7.0 Too many messages, closing connection")
    campaign = engine.campaign(engine.contact_list(*addresses))
    engine.send_now(campaign)

    engine.tick()

    emails = engine.emails(campaign)
    assert emails["a@example.org"].status == S.SENT
    assert (emails["b@example.org"].status, emails["b@example.org"].attempts) == (S.DEFERRED, 1)
    assert emails["b@example.org"].smtp_response == "421 4.7.0 Too many messages, closing connection"
    for address in ("c@example.org", "d@example.org"):
        assert (emails[address].status, emails[address].attempts) == (S.PENDING, 0)
        assert emails[address].batch_id is None and emails[address].smtp_code is None
    assert engine.reports[0].released == 2
    assert engine.handler.delivered_to() == ["a@example.org"]
    engine.account.refresh_from_db()
    assert engine.account.throttle_factor < 1.0

    # The next tick takes the handed-back rows on a new connection.
    engine.clock.advance(seconds=10)
    engine.tick()
    assert engine.handler.connections == 2
    assert sorted(engine.handler.delivered_to()) == ["a@example.org", "c@example.org", "d@example.org"]


# --- connection lost after DATA -------------------------------------------------------------------


def test_a_connection_dropped_after_data_is_retried_once_and_marked_a_possible_duplicate(make_engine):
    engine = make_engine(RecordingHandler(drop_after_data={"a@example.org": 1}))
    campaign = engine.campaign(engine.contact_list("a@example.org", "b@example.org"))
    engine.send_now(campaign)

    engine.tick()

    assert engine.handler.connections == 2
    assert [m.rcpt_tos for m in engine.handler.dropped] == [["a@example.org"]]
    assert sorted(engine.handler.delivered_to()) == ["a@example.org", "b@example.org"]
    first, second = engine.email(campaign, "a@example.org"), engine.email(campaign, "b@example.org")
    assert (first.status, first.possible_duplicate, first.attempts) == (S.SENT, True, 1)
    assert first.smtp_response == OK
    # The retry carried the same Message-ID, so the recipient's client can fold the two.
    assert engine.handler.dropped[0].parsed()["Message-ID"] == first.message_id
    assert engine.handler.messages[0].parsed()["Message-ID"] == first.message_id
    assert (second.status, second.possible_duplicate) == (S.SENT, False)


def test_a_connection_dropped_twice_defers_the_email_as_a_possible_duplicate(make_engine):
    engine = make_engine(RecordingHandler(drop_after_data={"a@example.org": 2}))
    campaign = engine.campaign(engine.contact_list("a@example.org"))
    engine.send_now(campaign)

    engine.tick()

    email = engine.email(campaign, "a@example.org")
    assert (email.status, email.possible_duplicate, email.attempts) == (S.DEFERRED, True, 1)
    assert email.sent_at is None and email.smtp_code is None
    assert email.next_attempt_at == engine.clock() + timedelta(seconds=30)

    engine.clock.advance(seconds=30)
    engine.tick()
    email.refresh_from_db()
    assert (email.status, email.possible_duplicate) == (S.SENT, True)
    assert len(engine.handler.dropped) == 2 and engine.handler.delivered_to() == ["a@example.org"]


def test_a_connection_lost_after_data_is_a_possible_duplicate_even_when_the_reconnect_fails(make_engine):
    engine = make_engine(RecordingHandler(drop_after_data={"a@example.org": 1}, accept_connections=1))
    campaign = engine.campaign(engine.contact_list("a@example.org", "b@example.org"))
    engine.send_now(campaign)

    engine.tick()

    assert engine.handler.connections == 2  # the second was hung up on before the greeting
    first, second = engine.email(campaign, "a@example.org"), engine.email(campaign, "b@example.org")
    # The lost message keeps the rule for a loss after DATA (one more try, spent); the failed
    # reconnect is an outage, no email's fault: the rest goes back unspent and the account rests.
    assert (first.status, first.possible_duplicate, first.attempts) == (S.DEFERRED, True, 1)
    assert (second.status, second.possible_duplicate, second.attempts) == (S.PENDING, False, 0)
    assert engine.handler.messages == []
    assert SmtpAccount.objects.get(pk=engine.account.pk).backoff_until == engine.clock() + timedelta(seconds=30)

    engine.handler.accept_connections = None
    engine.clock.advance(seconds=30)
    engine.tick()
    first.refresh_from_db()
    assert (first.status, first.possible_duplicate) == (S.SENT, True)


# --- pause and cancel mid-way ---------------------------------------------------------------------


def test_cancel_mid_batch_leaves_the_unsent_rows_cancelled_and_never_sends_them(engine):
    addresses = [f"r{i}@example.org" for i in range(5)]
    campaign = engine.campaign(engine.contact_list(*addresses))
    engine.send_now(campaign)
    # Cancelled while the sender waits its pacing turn before the third message.
    engine.sleep.at(2, lambda: lifecycle.cancel(campaign=campaign, now=engine.clock()))

    engine.tick()

    assert engine.handler.delivered_to() == addresses[:2]
    statuses = engine.statuses(campaign)
    assert [statuses[a] for a in addresses] == [S.SENT, S.SENT, S.CANCELLED, S.CANCELLED, S.CANCELLED]
    for address in addresses[2:]:
        assert engine.email(campaign, address).attempts == 0

    for _ in range(3):
        engine.clock.advance(minutes=10)
        assert engine.tick().claimed == 0
    assert engine.handler.delivered_to() == addresses[:2]
    campaign.refresh_from_db()
    assert campaign.status == Campaign.Status.CANCELLED


def test_cancel_between_batches_cancels_the_claimed_batches_too(make_engine):
    engine = make_engine(batch_size=2)
    addresses = [f"r{i}@example.org" for i in range(6)]
    campaign = engine.campaign(engine.contact_list(*addresses))
    engine.send_now(campaign)
    claimed = []

    engine.tick(enqueue=claimed.append)
    assert len(claimed) == 3
    engine.send_batch(claimed[0])
    lifecycle.cancel(campaign=campaign, now=engine.clock())
    for batch_id in claimed[1:]:
        engine.send_batch(batch_id)

    assert engine.handler.delivered_to() == addresses[:2]
    assert list(engine.statuses(campaign).values()).count(S.CANCELLED) == 4
    engine.clock.advance(minutes=10)  # past any lease
    assert engine.tick().claimed == 0
    assert engine.handler.delivered_to() == addresses[:2]


def test_a_batch_whose_campaign_was_paused_after_the_claim_hands_its_rows_back_unspent(engine):
    addresses = [f"r{i}@example.org" for i in range(3)]
    campaign = engine.campaign(engine.contact_list(*addresses))
    engine.send_now(campaign)
    claimed = []
    engine.tick(enqueue=claimed.append)
    lifecycle.pause(campaign=campaign, now=engine.clock())

    report = engine.send_batch(claimed[0])

    # The pause took the waiting batch back itself (see test_a_pause_or_cancel_takes_back_...).
    assert report.sent == 0 and report.connections == 0 and report.notes == ["batch already taken"]
    assert engine.handler.delivered_to() == []
    assert {(e.status, e.attempts, e.batch_id) for e in engine.emails(campaign).values()} == {(S.PENDING, 0, None)}
    lifecycle.resume(campaign=Campaign.objects.get(pk=campaign.pk), now=engine.clock())
    engine.tick()
    assert sorted(engine.handler.delivered_to()) == addresses


def test_a_message_delivered_while_another_worker_sees_the_cancel_is_still_recorded_sent(make_engine):
    engine = make_engine(batch_size=2)
    addresses = [f"r{i}@example.org" for i in range(4)]
    campaign = engine.campaign(engine.contact_list(*addresses))
    engine.send_now(campaign)
    claimed = []
    engine.tick(enqueue=claimed.append)
    first_batch, second_batch = claimed

    def cancel_and_run_the_other_worker():
        # Worker B's server has just accepted r2; before B records it, the owner cancels
        # and worker A starts on its own batch and notices the cancel.
        lifecycle.cancel(campaign=campaign, now=engine.clock())
        engine.send_batch(first_batch)

    fired = []

    def clock():
        if not fired and "r2@example.org" in engine.handler.delivered_to():
            fired.append(True)
            cancel_and_run_the_other_worker()
        return engine.clock()

    sender.send_batch(second_batch, clock=clock, sleep=engine.sleep)

    assert fired and engine.handler.delivered_to() == ["r2@example.org"]
    assert engine.statuses(campaign) == {
        "r0@example.org": S.CANCELLED, "r1@example.org": S.CANCELLED,
        "r2@example.org": S.SENT, "r3@example.org": S.CANCELLED,
    }


def test_pause_mid_batch_then_resume_sends_the_rest_without_resending_anyone(engine):
    addresses = [f"r{i}@example.org" for i in range(5)]
    campaign = engine.campaign(engine.contact_list(*addresses))
    engine.send_now(campaign)
    engine.sleep.at(3, lambda: lifecycle.pause(campaign=campaign, now=engine.clock()))

    engine.tick()

    assert engine.handler.delivered_to() == addresses[:3]
    statuses = engine.statuses(campaign)
    assert [statuses[a] for a in addresses] == [S.SENT, S.SENT, S.SENT, S.PENDING, S.PENDING]
    engine.clock.advance(seconds=10)
    assert engine.tick().claimed == 0  # paused: nothing claimed

    lifecycle.resume(campaign=campaign, now=engine.clock())
    engine.clock.advance(seconds=10)
    engine.tick()

    assert sorted(engine.handler.delivered_to()) == addresses  # each exactly once
    assert set(engine.statuses(campaign).values()) == {S.SENT}
    campaign.refresh_from_db()
    assert campaign.status == Campaign.Status.COMPLETED


# --- the owner's access ---------------------------------------------------------------------------


@pytest.mark.parametrize("lost_access", ["deactivated", "expired"])
def test_a_campaign_of_an_owner_without_access_sends_nothing(engine, lost_access):
    campaign = engine.campaign(engine.contact_list("a@example.org", "b@example.org"))
    engine.send_now(campaign)
    _take_access_away(engine.owner, lost_access)

    report = engine.tick()

    assert report.ran and report.claimed == 0
    assert engine.handler.connections == 0 and engine.handler.messages == []
    assert set(engine.statuses(campaign).values()) == {S.PENDING}


@pytest.mark.parametrize("lost_access", ["deactivated", "expired"])
def test_a_batch_claimed_before_the_owner_lost_access_is_handed_back_unsent(engine, lost_access):
    campaign = engine.campaign(engine.contact_list("a@example.org", "b@example.org"))
    engine.send_now(campaign)
    claimed = []
    engine.tick(enqueue=claimed.append)
    _take_access_away(engine.owner, lost_access)

    report = engine.send_batch(claimed[0])

    assert report.sent == 0 and report.released == 2
    assert engine.handler.connections == 0
    assert set(engine.statuses(campaign).values()) == {S.PENDING}


def _take_access_away(user, how):
    if how == "deactivated":
        user.is_active = False
    else:
        user.access_expires_at = timezone.now() - timedelta(minutes=1)
    user.save()


def test_a_scheduled_campaign_of_an_expired_owner_does_not_start(engine):
    campaign = engine.campaign(engine.contact_list("a@example.org"))
    lifecycle.schedule(campaign=campaign, at=engine.clock(), now=engine.clock())
    _take_access_away(engine.owner, "expired")

    report = engine.tick()

    assert report.started == [] and report.claimed == 0
    campaign.refresh_from_db()
    assert campaign.status == Campaign.Status.SCHEDULED
    assert not Email.objects.filter(campaign=campaign).exists()


# --- a task delivered twice -----------------------------------------------------------------------


def test_a_batch_task_delivered_twice_sends_each_email_once(engine):
    addresses = [f"r{i}@example.org" for i in range(4)]
    campaign, (batch_id,) = engine.claimed_campaign(addresses)

    first = engine.send_batch(batch_id)
    again = sender.send_batch(str(batch_id), clock=engine.clock, sleep=engine.sleep)  # as the Celery task passes it

    assert first.sent == 4
    assert again.sent == 0 and again.connections == 0
    assert sorted(engine.handler.delivered_to()) == addresses
    assert engine.handler.connections == 1
    assert all(e.attempts == 1 for e in engine.emails(campaign).values())


def test_the_batch_sending_a_campaigns_last_rows_completes_it_without_waiting_for_a_tick(make_engine):
    engine = make_engine(batch_size=2)
    campaign, claimed = engine.claimed_campaign([f"r{i}@example.org" for i in range(3)])
    assert len(claimed) == 2

    engine.send_batch(claimed[0])
    campaign.refresh_from_db()
    assert campaign.status == Campaign.Status.SENDING  # one row still queued in the other batch

    engine.clock.advance(seconds=3)
    engine.send_batch(claimed[1])
    campaign.refresh_from_db()
    assert (campaign.status, campaign.completed_at) == (Campaign.Status.COMPLETED, engine.clock())


def test_a_second_delivery_arriving_while_the_first_is_sending_sends_nothing(engine):
    addresses = [f"r{i}@example.org" for i in range(4)]
    campaign, (batch_id,) = engine.claimed_campaign(addresses)
    again = []
    # During the pacing wait before the second message: the broker hands the task out again.
    engine.sleep.at(1, lambda: again.append(sender.send_batch(str(batch_id), clock=engine.clock, sleep=engine.sleep)))

    first = engine.send_batch(batch_id)

    assert first.sent == 4
    assert again[0].sent == 0 and again[0].connections == 0 and again[0].notes == ["batch already taken"]
    assert sorted(engine.handler.delivered_to()) == addresses


def test_a_batch_taken_late_renews_its_lease_and_sends_only_the_rows_still_its_own(engine, monkeypatch):
    """The lease is set at the claim. A batch that waited in the queue for more than half of it
    renews it before sending, and sends only the rows it renewed: one whose lease ran out and that a
    dispatcher returned to pending between the worker's read and its renewal is left to whoever has it now."""
    addresses = [f"r{i}@example.org" for i in range(3)]
    campaign, (batch_id,) = engine.claimed_campaign(addresses)
    engine.clock.advance(seconds=settings.EMAIL_LEASE_SECONDS * 0.75)
    renewals = []
    renew = ledger.renew_lease

    def returned_meanwhile_then_renew(**kwargs):
        renewals.append(kwargs["now"])
        Email.objects.filter(campaign=campaign, to_email=addresses[0]).update(
            status=S.PENDING, batch_id=None, lease_expires_at=None
        )
        return renew(**kwargs)

    monkeypatch.setattr(ledger, "renew_lease", returned_meanwhile_then_renew)
    report = engine.send_batch(batch_id)

    assert renewals == [engine.clock()]
    assert report.sent == 2 and sorted(engine.handler.delivered_to()) == addresses[1:]
    assert engine.statuses(campaign) == {addresses[0]: S.PENDING, addresses[1]: S.SENT, addresses[2]: S.SENT}


def test_a_worker_past_its_lease_stops_at_once_and_the_rows_are_sent_once_by_their_new_owner(engine):
    """A worker that outlived its lease (a long stall between two messages: here the pacing wait
    before the second one lasts past the lease, and a dispatcher tick meanwhile returns its rows to
    pending and claims them again for another worker) must send nothing more: each of those rows
    belongs to the new batch, and sending it here too would deliver it twice."""
    addresses = [f"r{i}@example.org" for i in range(4)]
    campaign, (batch_id,) = engine.claimed_campaign(addresses)
    reclaimed = []

    def stall_past_the_lease():
        engine.clock.advance(seconds=settings.EMAIL_LEASE_SECONDS + 1)
        engine.tick(enqueue=reclaimed.append)

    engine.sleep.at(1, stall_past_the_lease)
    report = engine.send_batch(batch_id)

    assert engine.handler.delivered_to() == addresses[:1]
    assert report.sent == 1
    assert len(reclaimed) == 1
    assert {e.to_email: e.batch_id for e in engine.emails(campaign).values() if e.status == S.QUEUED} == {
        a: reclaimed[0] for a in addresses[1:]
    }

    engine.send_batch(reclaimed[0])

    assert sorted(engine.handler.delivered_to()) == addresses  # each exactly once
    assert set(engine.statuses(campaign).values()) == {S.SENT}


def test_a_worker_whose_renewal_finds_some_rows_gone_skips_exactly_those(engine, monkeypatch):
    """The renewal's answer decides: a row it did not renew (no longer this worker's) is never sent,
    and the rows it renewed still are."""
    addresses = [f"r{i}@example.org" for i in range(4)]
    campaign, (batch_id,) = engine.claimed_campaign(addresses)

    def lose_one_row_then_renewal_is_due():
        Email.objects.filter(campaign=campaign, to_email=addresses[2]).update(
            status=S.PENDING, batch_id=None, lease_expires_at=None
        )
        engine.clock.advance(seconds=sender.LEASE_RENEW_EVERY + 1)

    engine.sleep.at(1, lose_one_row_then_renewal_is_due)
    report = engine.send_batch(batch_id)

    assert sorted(engine.handler.delivered_to()) == [addresses[0], addresses[1], addresses[3]]
    assert report.sent == 3
    assert engine.statuses(campaign)[addresses[2]] == S.PENDING


def test_a_batch_taken_early_sends_on_the_claims_lease_without_rewriting_its_rows(engine):
    addresses = [f"r{i}@example.org" for i in range(3)]
    campaign, (batch_id,) = engine.claimed_campaign(addresses)
    claimed_rows = {e.to_email: (e.batch_id, e.lease_expires_at, e.message_id) for e in engine.emails(campaign).values()}
    engine.clock.advance(seconds=settings.EMAIL_LEASE_SECONDS * 0.25)

    assert ledger.take_batch(batch_id=batch_id, now=engine.clock()) is True
    assert ledger.take_batch(batch_id=batch_id, now=engine.clock()) is False
    # Taking wrote one BatchTake row; the rows still carry the claim's batch id, lease and Message-ID.
    assert BatchTake.objects.filter(batch_id=batch_id).count() == 1
    now_rows = {e.to_email: (e.batch_id, e.lease_expires_at, e.message_id) for e in engine.emails(campaign).values()}
    assert now_rows == claimed_rows
    assert all(message_id.startswith("<") and message_id.endswith(">") for _, _, message_id in claimed_rows.values())
    assert len({message_id for _, _, message_id in claimed_rows.values()}) == 3
    report = engine.send_batch(batch_id)  # taken already (above): as a second delivery, nothing
    assert report.sent == 0 and engine.handler.delivered_to() == []


def test_a_batch_is_read_through_its_own_index_whatever_the_statistics_say(engine, require_postgres):
    """Statistics taken while nothing was queued made PostgreSQL read each batch through the lease
    index, every queued row filtered by batch id: 20,000 rows read per batch of a large campaign."""
    from django.db import connection

    campaign = engine.campaign(engine.contact_list(*[f"r{i}@example.org" for i in range(30)]))
    engine.send_now(campaign)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE campaigns_email")  # 30 pending rows, none queued
        cursor.execute("SET LOCAL enable_seqscan = off")  # a table this small is read whole: compare indexes
        cursor.execute("EXPLAIN " + ledger._BATCH_ROWS, [str(uuid.uuid4()), S.QUEUED])
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert "Index Scan using email_batch_queued on campaigns_email" in plan, plan


def test_takes_are_forgotten_after_a_day(engine):
    old, recent = uuid.uuid4(), uuid.uuid4()
    assert ledger.take_batch(batch_id=old, now=engine.clock() - timedelta(days=1, seconds=1))
    assert ledger.take_batch(batch_id=recent, now=engine.clock() - timedelta(hours=23))
    engine.tick()
    assert set(BatchTake.objects.values_list("batch_id", flat=True)) == {recent}


def test_a_batch_stops_when_another_batch_pauses_its_account(engine):
    addresses = [f"r{i}@example.org" for i in range(4)]
    campaign = engine.campaign(engine.contact_list(*addresses))
    engine.send_now(campaign)

    def quota_hit_elsewhere():
        SmtpAccount.objects.filter(pk=engine.account.pk).update(
            paused_until=engine.clock() + timedelta(hours=1), pause_reason="550 5.4.5 quota (other batch)"
        )

    engine.sleep.at(1, quota_hit_elsewhere)  # during the pacing wait before the second message
    engine.tick()

    assert engine.handler.delivered_to() == addresses[:1]
    statuses = engine.statuses(campaign)
    assert [statuses[a] for a in addresses] == [S.SENT, S.PENDING, S.PENDING, S.PENDING]
    assert all(engine.email(campaign, a).attempts == 0 for a in addresses[1:])



def test_a_long_pacing_wait_frees_the_worker_and_the_batch_continues_when_its_slot_comes(make_engine):
    from campaigns.delivery import sender as sender_module

    engine = make_engine(max_per_minute=15)  # a slot every 4 s
    addresses = ["a@example.org", "b@example.org", "c@example.org"]
    campaign = engine.campaign(engine.contact_list(*addresses))
    engine.send_now(campaign)
    continuations = []

    def run(batch_id):
        sender_module.send_batch(
            batch_id, clock=engine.clock, sleep=engine.sleep,
            continue_later=lambda next_id, delay: continuations.append((next_id, delay)),
        )

    engine.tick(enqueue=run)
    assert engine.handler.delivered_to() == addresses[:1]
    assert engine.sleep.waits == []  # the worker never slept through the 4 s
    next_id, delay = continuations[-1]
    assert delay == pytest.approx(4.0)
    # The rest stay claimed (no other worker or tick takes them), unspent.
    rest = [engine.email(campaign, a) for a in addresses[1:]]
    assert {(e.status, e.batch_id, e.attempts) for e in rest} == {(S.QUEUED, next_id, 0)}
    assert engine.tick().claimed == 0

    for _ in addresses[1:]:
        engine.clock.advance(seconds=4)
        run(continuations[-1][0])
    assert engine.handler.delivered_to() == addresses
    assert set(engine.statuses(campaign).values()) == {S.SENT}
    assert engine.sleep.waits == []


# --- each result is recorded before the next message goes out ----------------------------------


class _LedgerWatchingHandler(RecordingHandler):
    """At each DATA, reads in its own database connection how many of the campaign's rows are sent."""

    def __post_init__(self):
        super().__post_init__()
        self.sent_rows_seen_at_data = []

    async def handle_DATA(self, server, session, envelope):
        from asgiref.sync import sync_to_async
        from django.db import connection

        def sent_rows():
            try:
                return Email.objects.filter(status=S.SENT).count()
            finally:
                connection.close()

        self.sent_rows_seen_at_data.append(await sync_to_async(sent_rows, thread_sensitive=False)())
        return await super().handle_DATA(server, session, envelope)


# serialized_rollback: the Marketers group and the lock row come from data migrations.
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_each_result_is_committed_before_the_next_message_is_delivered(make_engine, require_postgres):
    # The sender writes a result without waiting for its answer and builds the next message
    # meanwhile; the answer is read before the next message's content is sent. Seen from another
    # connection, message n is delivered only once the n-1 before it are recorded sent.
    handler = _LedgerWatchingHandler()
    engine = make_engine(handler)
    addresses = [f"r{i}@example.org" for i in range(5)]
    campaign = engine.campaign(engine.contact_list(*addresses))
    engine.send_now(campaign)

    engine.tick()

    assert handler.sent_rows_seen_at_data == [0, 1, 2, 3, 4]
    assert all(e.status == S.SENT for e in engine.emails(campaign).values())


# Outside a test transaction, as in a worker: there the reservation's transaction really begins.
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_pacing_slots_reserved_in_the_middle_of_a_batch_after_a_result_still_send_the_batch(
    make_engine, settings
):
    # 120 a minute: slots are reserved two at a time (a second's worth), so a new reservation,
    # in its own transaction, follows a result whose answer is still to be read. (Waits are
    # recorded, not slept, and the test's clock stands still: allow them all in this batch.)
    settings.MAX_PACING_WAIT_SECONDS = 3600
    engine = make_engine(max_per_minute=120)
    addresses = [f"r{i}@example.org" for i in range(6)]
    campaign = engine.campaign(engine.contact_list(*addresses))
    engine.send_now(campaign)

    engine.tick()

    assert sorted(engine.handler.delivered_to()) == addresses
    assert all(e.status == S.SENT for e in engine.emails(campaign).values())
    assert engine.reports[0].sent == 6 and engine.reports[0].connections == 1


# --- a server that opens DATA although it refused the recipient ---------------------------------


class _LaxPipeliningServer(threading.Thread):
    """A plain-socket SMTP server that breaks RFC 2920: it answers 354 to DATA after refusing the
    only recipient (aiosmtpd cannot be made to). It records every line it receives."""

    def __init__(self, refused):
        super().__init__(daemon=True)
        self.refused = refused
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.lines, self.delivered = [], []

    def run(self):
        conn, _ = self.listener.accept()
        with conn, conn.makefile("rb") as incoming:
            conn.sendall(b"220 lax.example ESMTP\r\n")
            recipient, in_data, body = None, False, []
            for raw in incoming:
                line = raw.rstrip(b"\r\n").decode()
                self.lines.append(line)
                if in_data:
                    if line == ".":
                        in_data = False
                        if recipient is None:
                            conn.sendall(b"554 5.5.1 No valid recipients\r\n")
                        else:
                            self.delivered.append((recipient, body))
                            conn.sendall(b"250 2.0.0 OK\r\n")
                        recipient, body = None, []
                    else:
                        body.append(line)
                    continue
                verb = line.split(":")[0].split(" ")[0].upper()
                if verb == "EHLO":
                    conn.sendall(b"250-lax.example\r\n250 PIPELINING\r\n")
                elif verb == "RCPT":
                    address = line.split("<", 1)[1].rstrip(">")
                    if address in self.refused:
                        conn.sendall(b"550 5.1.1 User unknown\r\n")
                    else:
                        recipient = address
                        conn.sendall(b"250 2.1.5 OK\r\n")
                elif verb == "DATA":
                    in_data = True
                    conn.sendall(b"354 go ahead\r\n")
                elif verb == "QUIT":
                    conn.sendall(b"221 bye\r\n")
                    return
                else:  # MAIL, RSET, NOOP
                    conn.sendall(b"250 OK\r\n")


def test_a_server_opening_data_after_refusing_the_recipient_gets_no_content_and_the_batch_goes_on(
    allow_local_smtp, marketer
):
    server = _LaxPipeliningServer(refused={"gone@example.org"})
    server.start()
    account = SmtpAccountFactory(
        owner=marketer, host="127.0.0.1", port=server.port, security="none", username="",
        from_email="news@alice.example", max_per_minute=6000, max_per_hour=100000, max_per_day=1000000,
    )
    contacts = [ContactFactory(owner=marketer, email=a) for a in ("gone@example.org", "here@example.org")]
    campaign = CampaignFactory(owner=marketer, smtp_account=account,
                               lists=[ContactListFactory(owner=marketer, contacts=contacts)])
    lifecycle.send_now(campaign=campaign)
    claimed = []
    dispatcher.tick(enqueue=claimed.append)

    (report,) = [sender.send_batch(batch_id, sleep=lambda seconds: None) for batch_id in claimed]
    server.join(timeout=5)

    rows = {e.to_email: e for e in Email.objects.filter(campaign=campaign)}
    assert (rows["gone@example.org"].status, rows["gone@example.org"].smtp_code) == (S.FAILED, 550)
    assert rows["gone@example.org"].smtp_response == "550 5.1.1 User unknown"
    assert rows["here@example.org"].status == S.SENT
    assert [recipient for recipient, _ in server.delivered] == ["here@example.org"]
    # The refused message's DATA got a lone "." and the envelope was reset: none of its content went out.
    first_dot = server.lines.index(".")
    assert server.lines[first_dot - 1] == "DATA" and server.lines[first_dot + 1].upper() == "RSET"
    assert report.sent == 1 and report.failed == 1 and report.connections == 1


# --- the next envelope written behind the content ------------------------------------------------


class _AheadServer(threading.Thread):
    """A plain-socket SMTP server offering PIPELINING that records, for each message's content,
    whether the next message's MAIL, RCPT and DATA arrived before it answered that content.

    It holds its answer to a content until the next DATA line arrives or 0.3 s pass.
    `content_reply(n)` gives the answer to the n-th content (0-based)."""

    def __init__(self, content_reply=lambda n: b"250 2.0.0 OK"):
        super().__init__(daemon=True)
        self.content_reply = content_reply
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.lines, self.delivered, self.ahead = [], [], []
        self.connections = 0

    def run(self):
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.connections += 1
            self._serve(conn)

    def _serve(self, conn):
        with conn:
            conn.sendall(b"220 ahead.example ESMTP\r\n")
            buffer, recipient, in_data, held = b"", None, False, None
            conn.settimeout(0.3)
            while True:
                if b"\r\n" not in buffer:
                    try:
                        chunk = conn.recv(65536)
                    except socket.timeout:
                        chunk = None
                    if chunk is None:  # nothing more came: answer what is held
                        if held is not None:
                            self.ahead.append(False)
                            conn.sendall(held + b"\r\n")
                            held = None
                        continue
                    if not chunk:
                        return  # the client dropped the connection
                    buffer += chunk
                    continue
                raw, buffer = buffer.split(b"\r\n", 1)
                line = raw.decode()
                self.lines.append(line)
                if in_data:
                    if line == ".":
                        in_data = False
                        self.delivered.append(recipient)
                        held = self.content_reply(len(self.delivered) - 1)
                        recipient = None
                        if held.startswith(b"421"):
                            self.ahead.append(b"MAIL" in buffer)
                            conn.sendall(held + b"\r\n")
                            return
                    continue
                verb = line.split(":")[0].split(" ")[0].upper()
                if verb == "EHLO":
                    conn.sendall(b"250-ahead.example\r\n250 PIPELINING\r\n")
                elif verb == "MAIL":
                    conn.sendall(b"250 2.1.0 OK\r\n")
                elif verb == "RCPT":
                    recipient = line.split("<", 1)[1].rstrip(">")
                    conn.sendall(b"250 2.1.5 OK\r\n")
                elif verb == "DATA":
                    if held is not None:  # the next envelope came before the content's answer
                        self.ahead.append(True)
                        conn.sendall(held + b"\r\n")
                        held = None
                    in_data = True
                    conn.sendall(b"354 go ahead\r\n")
                elif verb == "QUIT":
                    if held is not None:
                        self.ahead.append(False)
                        conn.sendall(held + b"\r\n")
                    conn.sendall(b"221 bye\r\n")
                    return
                else:
                    conn.sendall(b"250 OK\r\n")


def _ahead_campaign(marketer, port, addresses, **account_fields):
    account = SmtpAccountFactory(
        owner=marketer, host="127.0.0.1", port=port, security="none", username="", from_email="news@alice.example",
        **{"max_per_minute": 6000, "max_per_hour": 100000, "max_per_day": 1000000, **account_fields},
    )
    contacts = [ContactFactory(owner=marketer, email=a) for a in addresses]
    campaign = CampaignFactory(owner=marketer, smtp_account=account,
                               lists=[ContactListFactory(owner=marketer, contacts=contacts)])
    lifecycle.send_now(campaign=campaign)
    return campaign


def test_the_next_envelope_goes_out_with_the_content_and_each_message_is_answered_and_recorded(
    allow_local_smtp, marketer
):
    server = _AheadServer()
    server.start()
    addresses = [f"r{i}@example.org" for i in range(4)]
    campaign = _ahead_campaign(marketer, server.port, addresses)

    dispatcher.tick(enqueue=lambda batch_id: sender.send_batch(batch_id, sleep=lambda seconds: None))

    assert server.delivered == addresses
    # Messages 1-3 each had the next envelope behind them; the last one nothing to send ahead.
    assert server.ahead == [True, True, True, False]
    assert {e.status for e in Email.objects.filter(campaign=campaign)} == {S.SENT}
    assert [line.upper() for line in server.lines].count("QUIT") == 1 and server.connections == 1


def test_a_paced_account_sends_no_envelope_ahead_of_a_slot_far_away(allow_local_smtp, marketer):
    server = _AheadServer()
    server.start()
    addresses = ["a@example.org", "b@example.org"]
    _ahead_campaign(marketer, server.port, addresses, max_per_minute=600)  # a slot every 0.1 s
    fixed = timezone.now()  # waits are not slept: the clock stays where the slots are counted from
    dispatcher.tick(now=fixed, enqueue=lambda batch_id: sender.send_batch(
        batch_id, clock=lambda: fixed, sleep=lambda seconds: None))

    assert server.delivered == addresses and server.ahead == [False, False]


def test_the_envelope_ahead_can_be_turned_off(allow_local_smtp, marketer, settings):
    settings.SMTP_ENVELOPE_AHEAD_SECONDS = 0
    server = _AheadServer()
    server.start()
    addresses = ["a@example.org", "b@example.org"]
    _ahead_campaign(marketer, server.port, addresses)
    dispatcher.tick(enqueue=lambda batch_id: sender.send_batch(batch_id, sleep=lambda seconds: None))

    assert server.delivered == addresses and server.ahead == [False, False]


def test_a_batch_stopping_with_an_envelope_ahead_drops_the_connection_and_the_next_message_is_never_sent(
    allow_local_smtp, marketer
):
    server = _AheadServer()
    server.start()
    addresses = ["a@example.org", "b@example.org", "c@example.org"]
    campaign = _ahead_campaign(marketer, server.port, addresses)

    def cancel_during_the_wait(seconds):
        lifecycle.cancel(campaign=Campaign.objects.get(pk=campaign.pk))

    fixed = timezone.now()  # b's slot stays 10 ms ahead: a wait, during which the campaign is cancelled
    dispatcher.tick(now=fixed, enqueue=lambda batch_id: sender.send_batch(
        batch_id, clock=lambda: fixed, sleep=cancel_during_the_wait))

    # b's envelope (and DATA) went out behind a's content; the cancel stopped the batch before b's
    # content: the connection was dropped without a QUIT (which the server would have taken as
    # b's content), and the server delivered only a.
    assert server.delivered == ["a@example.org"]
    assert server.ahead == [True]
    assert "QUIT" not in [line.upper() for line in server.lines]
    statuses = {e.to_email: e.status for e in Email.objects.filter(campaign=campaign)}
    assert statuses == {"a@example.org": S.SENT, "b@example.org": S.CANCELLED, "c@example.org": S.CANCELLED}


def test_a_421_after_a_content_with_an_envelope_ahead_defers_that_one_and_hands_the_rest_back(
    allow_local_smtp, marketer
):
    server = _AheadServer(content_reply=lambda n: b"421 4.7.0 Too many messages, closing" if n == 1 else b"250 OK")
    server.start()
    addresses = ["a@example.org", "b@example.org", "c@example.org"]
    campaign = _ahead_campaign(marketer, server.port, addresses)

    dispatcher.tick(enqueue=lambda batch_id: sender.send_batch(batch_id, sleep=lambda seconds: None))

    rows = {e.to_email: e for e in Email.objects.filter(campaign=campaign)}
    assert rows["a@example.org"].status == S.SENT
    assert (rows["b@example.org"].status, rows["b@example.org"].smtp_code) == (S.DEFERRED, 421)
    # c's envelope went out behind b's content, but c was never delivered: back to pending, unspent.
    assert server.ahead[-1] is True and server.delivered == ["a@example.org", "b@example.org"]
    assert (rows["c@example.org"].status, rows["c@example.org"].attempts) == (S.PENDING, 0)


@pytest.mark.parametrize(
    "raw, sent",
    [
        (b"Subject: x\r\n\r\nno dots here\r\n", b"Subject: x\r\n\r\nno dots here\r\n.\r\n"),
        (b".starts\r\n.second\r\nmid.dle\r\n..two", b"..starts\r\n..second\r\nmid.dle\r\n...two\r\n.\r\n"),
        (b"a\r\n.\r\nb\r\n", b"a\r\n..\r\nb\r\n.\r\n"),
    ],
)
def test_lines_starting_with_a_dot_are_doubled_and_the_content_ends_with_a_lone_dot(raw, sent):
    # RFC 5321 4.5.2: a line of content that starts with "." gets one more, or the server would
    # read a lone "." as the end of the message.
    assert smtp_session.data_content(raw) == sent


def test_a_body_with_lines_starting_with_a_dot_arrives_whole(engine):
    # Quoted-printable leaves ".hidden" as it is; without dot-stuffing the server would take a
    # lone "." line as the end of the message and the next line as a command.
    body = "Dear reader,\n.hidden line\n..two dots\n.\nthe end"
    campaign = engine.campaign(engine.contact_list("a@example.org", "b@example.org"), body_text=body)
    engine.send_now(campaign)

    engine.tick()

    assert sorted(engine.handler.delivered_to()) == ["a@example.org", "b@example.org"]
    for received in engine.handler.messages:
        text = received.parsed().get_body(preferencelist=("plain",)).get_content()
        assert text.replace("\r\n", "\n").startswith(body)
    assert set(engine.statuses(campaign).values()) == {S.SENT}


@pytest.mark.parametrize("stop", ["pause", "cancel"])
def test_a_pause_or_cancel_takes_back_at_once_the_batches_no_worker_has_taken(engine, stop):
    """Claimed batches still waiting in the queue used to hold their rows 'queued' until a worker took
    them, or for the whole lease with no worker running. Now they come back at once, and the task
    that arrives later finds its batch taken and sends nothing."""
    addresses = [f"r{i}@example.org" for i in range(4)]
    campaign, (batch_id,) = engine.claimed_campaign(addresses)

    getattr(lifecycle, stop)(campaign=campaign, now=engine.clock())

    expected = S.PENDING if stop == "pause" else S.CANCELLED
    rows = engine.emails(campaign).values()
    assert {(e.status, e.batch_id, e.lease_expires_at) for e in rows} == {(expected, None, None)}
    late = engine.send_batch(batch_id)
    assert late.notes == ["batch already taken"] and engine.handler.messages == []
    if stop == "pause":
        lifecycle.resume(campaign=campaign, now=engine.clock())
        engine.tick()
        assert sorted(engine.handler.delivered_to()) == addresses


def test_a_batch_a_worker_took_before_the_pause_is_left_to_that_worker(engine):
    addresses = [f"r{i}@example.org" for i in range(3)]
    campaign, (batch_id,) = engine.claimed_campaign(addresses)
    assert ledger.take_batch(batch_id=batch_id, now=engine.clock())

    lifecycle.pause(campaign=campaign, now=engine.clock())

    assert {e.status for e in engine.emails(campaign).values()} == {S.QUEUED}  # the worker's, until it stops


def test_a_batch_stopped_at_its_tasks_soft_time_limit_hands_its_unsent_rows_back_unspent(engine):
    """Celery raises SoftTimeLimitExceeded inside the task (here during a pacing wait): that is no
    row's fault, so nothing is failed or deferred; the unsent rows go back to pending at once."""
    from celery.exceptions import SoftTimeLimitExceeded

    addresses = [f"r{i}@example.org" for i in range(4)]
    campaign, (batch_id,) = engine.claimed_campaign(addresses)

    def time_is_up():
        raise SoftTimeLimitExceeded()

    engine.sleep.at(2, time_is_up)
    report = engine.send_batch(batch_id)

    assert engine.handler.delivered_to() == addresses[:2]
    assert report.released == 2 and "stopped at the task's time limit" in report.notes
    assert {a: (e.status, e.attempts) for a, e in engine.emails(campaign).items()} == {
        addresses[0]: (S.SENT, 1), addresses[1]: (S.SENT, 1), addresses[2]: (S.PENDING, 0), addresses[3]: (S.PENDING, 0),
    }


def test_without_a_way_to_continue_later_a_far_slot_hands_the_rest_back(make_engine, settings):
    settings.MAX_PACING_WAIT_SECONDS = 0.5
    engine = make_engine(max_per_minute=60)  # a slot every second, more than the 0.5 s a sender sleeps
    addresses = [f"r{i}@example.org" for i in range(3)]
    campaign, (batch_id,) = engine.claimed_campaign(addresses)

    report = engine.send_batch(batch_id)

    assert report.sent == 1 and report.released == 2
    assert sorted(e.status for e in engine.emails(campaign).values()) == [S.PENDING, S.PENDING, S.SENT]
