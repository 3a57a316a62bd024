"""The batch sender against a real SMTP server (aiosmtpd) in the test process: each server answer
ends its email in the right state.

A campaign is started with lifecycle.send_now; dispatcher ticks claim batches and
hand them straight to sender.send_batch. Time is a Clock the test moves by hand
(`now=` for the tick, `clock=` for the sender); pacing waits are recorded, never slept.
"""

from datetime import timedelta

import pytest
from django.urls import reverse

from campaigns.models import Campaign, Email
from campaigns.services import lifecycle
from contacts.models import Contact
from reporting.selectors.dashboard import dashboard
from sending.models import SmtpAccountState
from tests.factories import ContactFactory, ContactListFactory
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
        subject="For {{ name }} in {{ City|default:'your town' }}",
        body_html="<p>Weather in {{ City }}</p>",
    )
    engine.send_now(campaign)

    def delete_then_send(batch_id):
        gone.delete()  # Email.contact is SET_NULL: the row stays, without a contact
        return engine.send_batch(batch_id)

    engine.tick(enqueue=delete_then_send)

    subjects = {m.rcpt_tos[0]: m.parsed()["Subject"] for m in engine.handler.messages}
    assert subjects == {
        "pune@example.org": "For Asha in Pune",
        "goa@example.org": "For Ravi in Goa",
        "gone@example.org": "For Mira in your town",
    }
    assert engine.statuses(campaign) == dict.fromkeys(subjects, S.SENT)


# --- each row of the classification table ends in the right state -------------------------------

ROWS = [
    # stage, code, text, status, failure_class, contact status, whether the reply throttles the account
    ("RCPT", 451, "4.7.0 Try again later", S.DEFERRED, "", Contact.Status.SUBSCRIBED, True),
    ("RCPT", 450, "4.2.1 Mailbox busy", S.DEFERRED, "", Contact.Status.SUBSCRIBED, False),
    ("RCPT", 452, "4.5.3 Too many recipients", S.DEFERRED, "", Contact.Status.SUBSCRIBED, False),
    ("DATA", 454, "4.7.0 Temporary authentication failure", S.DEFERRED, "", Contact.Status.SUBSCRIBED, True),
    ("DATA", 554, "4.4.2 Try again", S.DEFERRED, "", Contact.Status.SUBSCRIBED, False),
    ("RCPT", 550, "5.1.1 User unknown", S.FAILED, "bounced", Contact.Status.BOUNCED, False),
    ("RCPT", 553, "5.1.3 Bad recipient address syntax", S.FAILED, "bounced", Contact.Status.BOUNCED, False),
    ("DATA", 550, "5.2.1 Mailbox disabled", S.FAILED, "bounced", Contact.Status.BOUNCED, False),
    ("DATA", 550, "5.7.1 Message rejected as spam", S.FAILED, "rejected", Contact.Status.SUBSCRIBED, False),
    ("DATA", 552, "5.3.4 Message too big", S.FAILED, "rejected", Contact.Status.SUBSCRIBED, False),
]


@pytest.mark.parametrize(("stage", "code", "text", "status", "failure_class", "contact_status", "throttles"), ROWS)
def test_each_reply_ends_the_email_in_its_state(
    make_engine, stage, code, text, status, failure_class, contact_status, throttles
):
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
    assert engine.statuses(campaign)["before@example.org"] == S.SENT
    engine.account.refresh_from_db()
    if throttles:
        # The server says the account sends too fast: the account waits (adaptive_rate's pause) and
        # the rest of the batch is handed back unspent for a later tick, not refused in turn.
        assert engine.account.state.learned_per_minute == 3000
        assert engine.email(campaign, "after@example.org").status == S.PENDING
        assert engine.email(campaign, "after@example.org").attempts == 0
    else:
        # The rest of the batch is unaffected and went over the same connection.
        assert engine.account.state.learned_per_minute is None
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
    # One accepted in the minute before: too few to estimate the server's limit from, so halved.
    assert engine.account.state.learned_per_minute == 3000
    assert "accepted only 1 in the minute before refusing" in engine.account.state.rate_note

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
    # Refusals 30 s apart are one episode; those a minute and an hour later, with nothing accepted
    # in the minute before, are new ones: halved three times in all.
    assert engine.account.state.learned_per_minute == 750


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
    assert engine.account.state.paused_until == engine.clock() + timedelta(hours=1)
    assert engine.account.state.pause_reason == "550 5.4.5 Daily user sending quota exceeded."
    assert engine.account.is_paused
    # The owner sees why, in their list of SMTP accounts.
    page = marketer_client.get(reverse("admin:sending_smtpaccount_changelist"))
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
    assert engine.account.state.pause_reason == "554 5.2.0 Sending quota exceeded"
    assert engine.statuses(campaign) == {"a@example.org": S.PENDING, "b@example.org": S.PENDING}
    assert engine.handler.messages == []


# --- 535 at login ---------------------------------------------------------------------------------


def test_an_account_pause_is_dated_when_it_happens_on_the_dashboard(engine, marketer):
    engine.handler.rcpt_replies["first@example.org"] = (550, "5.4.5 Daily user sending quota exceeded.")
    engine.send_now(engine.campaign(engine.contact_list("first@example.org")))
    engine.clock.advance(hours=2)
    engine.tick()
    engine.account.refresh_from_db()
    assert engine.account.state.paused_at == engine.clock()
    paused = [item for item in dashboard(user=marketer, now=engine.clock())["activity"] if item["kind"] == "paused"]
    assert [item["at"] for item in paused] == [engine.clock().isoformat()]


def test_an_authentication_failure_at_login_pauses_the_account_and_keeps_every_email(make_engine):
    handler = RecordingHandler(users={"alice@alice.example": "right-password"})
    engine = make_engine(
        handler,
        server_kwargs={"auth": True, "auth_require_tls": False},
        username="alice@alice.example",
        raw_password="wrong-password",
    )
    campaign = engine.campaign(engine.contact_list("a@example.org", "b@example.org"))
    engine.send_now(campaign)

    engine.tick()

    engine.account.refresh_from_db()
    assert engine.account.state.paused_until == engine.clock() + timedelta(hours=1)
    assert engine.account.state.pause_reason.startswith("535 ")
    assert "5.7.8" in engine.account.state.pause_reason
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
        handler,
        server_kwargs={"auth": True, "auth_require_tls": False},
        username="alice@alice.example",
        raw_password="right-password",
    )
    campaign = engine.campaign(engine.contact_list("a@example.org"))
    engine.send_now(campaign)

    with override_settings(FIELD_ENCRYPTION_KEYS=[Fernet.generate_key().decode()]):
        engine.tick()

    engine.account.refresh_from_db()
    assert "cannot be decrypted" in engine.account.state.pause_reason
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
    assert engine.account.state.learned_per_minute == 3000  # 421 is a throttle: the account slows

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
    assert SmtpAccountState.objects.get(account_id=engine.account.pk).backoff_until == engine.clock() + timedelta(
        seconds=30
    )

    engine.handler.accept_connections = None
    engine.clock.advance(seconds=30)
    engine.tick()
    first.refresh_from_db()
    assert (first.status, first.possible_duplicate) == (S.SENT, True)
