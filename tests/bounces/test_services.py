"""What a delivery report read after the 250 does: bounces, complaints and unsubscribes by mail."""

from datetime import timedelta

import pytest
from django.utils import timezone

from bounces import services
from bounces.parsing import Kind
from bounces.services import Result
from campaigns.models import Email
from contacts.models import Contact
from sending import verp
from tests.bounces import reports
from tests.factories import CampaignFactory, ContactFactory, EmailFactory, SmtpAccountFactory
from tracking.models import Event

S = Email.Status
BOUNCES = "bounces@mail.alice.example"
REPORT_FIELDS = ("status", "bounced_at", "bounce_kind", "bounce_status", "bounce_text", "complained_at", "updated_at")


def row(email):
    return Email.objects.filter(pk=email.pk).values(*REPORT_FIELDS).get()


def test_a_dsn_for_a_sent_campaign_email_bounces_its_contact_everywhere(make_engine):
    engine = make_engine(bounce_address=BOUNCES)
    contact_list = engine.contact_list("asha@example.in", "ravi@example.in")
    campaign = engine.campaign(contact_list)
    engine.send_now(campaign)
    engine.tick()
    engine.handler.wait_for(lambda h: len(h.messages) == 2)
    # Another campaign of the owner, its recipients written but not sent yet.
    later = engine.campaign(contact_list)
    engine.send_now(later)
    assert set(engine.statuses(later).values()) == {S.PENDING}

    asha = engine.email(campaign, "asha@example.in")
    (received,) = [m for m in engine.handler.messages if m.rcpt_tos == ["asha@example.in"]]
    report = reports.dsn(to=received.mail_from, recipient="asha@example.in")  # mailed to the envelope sender
    now = timezone.now()

    outcome = services.process_message(account=engine.account, raw=report, now=now)

    assert outcome == services.Outcome(kind=Kind.HARD, result=Result.RECORDED, email_id=asha.pk, suppressed=True)
    assert Contact.objects.get(owner=engine.owner, email="asha@example.in").status == Contact.Status.BOUNCED
    assert row(asha) == {
        "status": S.SENT,  # the server did accept it
        "bounced_at": now,
        "bounce_kind": "hard",
        "bounce_status": "5.1.1",
        "bounce_text": "550 5.1.1 <asha@example.in>: Recipient address rejected: User unknown",
        "complained_at": None,
        "updated_at": now,
    }
    assert engine.statuses(later) == {"asha@example.in": S.CANCELLED, "ravi@example.in": S.PENDING}
    assert list(Event.objects.filter(kind=Event.Kind.BOUNCE).values_list("email_id", flat=True)) == [asha.pk]
    assert Contact.objects.get(owner=engine.owner, email="ravi@example.in").status == Contact.Status.SUBSCRIBED

    before = row(asha)
    again = services.process_message(account=engine.account, raw=report, now=now + timedelta(hours=1))
    assert again.result == Result.ALREADY_RECORDED
    assert row(asha) == before
    assert Event.objects.filter(kind=Event.Kind.BOUNCE).count() == 1


@pytest.fixture
def account(marketer):
    return SmtpAccountFactory(owner=marketer, from_email="news@alice.example", bounce_address=BOUNCES)


def sent_email(account, address="asha@example.in", **fields):
    contact = Contact.objects.filter(owner=account.owner, email=address).first() or ContactFactory(
        owner=account.owner, email=address
    )
    campaign = CampaignFactory(owner=account.owner, smtp_account=account)
    values = {"status": S.SENT, "sent_at": timezone.now(), "message_id": f"<{campaign.pk}.{address}@alice.example>"}
    return EmailFactory(campaign=campaign, contact=contact, to_email=address, **(values | fields))


def verp_of(email):
    return verp.address(bounce_address=BOUNCES, email_id=email.pk)


def test_another_owners_email_is_left_alone(account, other_marketer):
    other_account = SmtpAccountFactory(owner=other_marketer, bounce_address=BOUNCES)
    theirs = sent_email(other_account)
    before = row(theirs)

    outcome = services.process_message(
        account=account, raw=reports.dsn(to=verp_of(theirs), recipient="asha@example.in")
    )

    assert outcome.result == Result.UNMATCHED
    assert row(theirs) == before
    assert theirs.contact.status == Contact.Status.SUBSCRIBED
    theirs.contact.refresh_from_db()
    assert theirs.contact.status == Contact.Status.SUBSCRIBED and not Event.objects.exists()


def test_a_forged_verp_token_changes_nothing(account):
    email = sent_email(account)
    forged = verp_of(email).replace("+", "+0", 1)  # another id, the same MAC
    outcome = services.process_message(account=account, raw=reports.dsn(to=forged, recipient="asha@example.in"))
    assert outcome.result == Result.UNMATCHED
    assert row(email)["bounced_at"] is None
    assert Contact.objects.get(pk=email.contact_id).status == Contact.Status.SUBSCRIBED


def test_without_verp_the_original_message_id_and_recipient_name_the_email(account):
    email = sent_email(account)
    sent_email(account, "ravi@example.in")
    original = reports.original_headers(to="asha@example.in", message_id=email.message_id)
    report = reports.dsn(to=BOUNCES, recipient="asha@example.in", original=original)

    assert services.process_message(account=account, raw=report).email_id == email.pk
    assert row(email)["bounce_kind"] == "hard"

    # The Message-ID of another address's email names nothing.
    ravi = Email.objects.get(to_email="ravi@example.in")
    original = reports.original_headers(to="ravi@example.in", message_id=email.message_id)
    report = reports.dsn(to=BOUNCES, recipient="ravi@example.in", original=original)
    assert services.process_message(account=account, raw=report).result == Result.UNMATCHED
    assert row(ravi)["bounced_at"] is None


def test_soft_bounces_suppress_only_at_the_limit_within_the_days(account, settings):
    settings.BOUNCE_SOFT_LIMIT, settings.BOUNCE_SOFT_DAYS = 3, 7
    now = timezone.now()
    emails = [sent_email(account) for _ in range(4)]
    contact = Contact.objects.get(owner=account.owner, email="asha@example.in")

    def soft(email, at):
        report = reports.dsn(
            to=verp_of(email), recipient="asha@example.in", status="4.2.2", diagnostic="smtp; 452 4.2.2 Mailbox full"
        )
        return services.process_message(account=account, raw=report, now=at)

    assert soft(emails[0], now - timedelta(days=10)).kind == Kind.SOFT  # too old to count at the third
    assert soft(emails[1], now - timedelta(days=2)).suppressed is False
    assert soft(emails[2], now - timedelta(days=1)).suppressed is False
    contact.refresh_from_db()
    assert contact.status == Contact.Status.SUBSCRIBED
    assert row(emails[2])["bounce_kind"] == "soft" and row(emails[2])["bounce_status"] == "4.2.2"

    assert soft(emails[3], now).suppressed is True  # the third within 7 days
    contact.refresh_from_db()
    assert contact.status == Contact.Status.BOUNCED


def test_a_hard_bounce_replaces_a_soft_one_but_not_the_reverse(account):
    email = sent_email(account)
    soft = reports.dsn(to=verp_of(email), recipient="asha@example.in", status="4.2.2", diagnostic="smtp; 452 full")
    hard = reports.dsn(to=verp_of(email), recipient="asha@example.in")
    assert services.process_message(account=account, raw=soft).result == Result.RECORDED
    assert services.process_message(account=account, raw=hard).result == Result.RECORDED
    assert row(email)["bounce_kind"] == "hard"
    assert services.process_message(account=account, raw=soft).result == Result.ALREADY_RECORDED
    assert row(email)["bounce_kind"] == "hard" and row(email)["bounce_status"] == "5.1.1"


def test_a_delay_changes_nothing(account):
    email = sent_email(account)
    delayed = reports.dsn(to=verp_of(email), recipient="asha@example.in", action="delayed", status="4.4.1")
    assert services.process_message(account=account, raw=delayed).result == Result.IGNORED
    assert row(email)["bounced_at"] is None


def test_an_arf_complaint_marks_the_contact_complained(account):
    email = sent_email(account)
    unsent = EmailFactory(
        campaign=CampaignFactory(owner=account.owner, smtp_account=account),
        contact=email.contact,
        to_email=email.to_email,
    )
    original = reports.original_headers(to="asha@example.in", message_id=email.message_id, return_path=verp_of(email))
    report = reports.arf(to="fbl@alice.example", recipient="asha@example.in", original=original)
    now = timezone.now()

    outcome = services.process_message(account=account, raw=report, now=now)

    assert outcome == services.Outcome(kind=Kind.COMPLAINT, result=Result.RECORDED, email_id=email.pk, suppressed=True)
    assert Contact.objects.get(pk=email.contact_id).status == Contact.Status.COMPLAINED
    assert row(email)["complained_at"] == now and row(email)["status"] == S.SENT
    assert Email.objects.get(pk=unsent.pk).status == S.CANCELLED
    assert Event.objects.get(kind=Event.Kind.COMPLAINT).email_id == email.pk

    assert services.process_message(account=account, raw=report).result == Result.ALREADY_RECORDED
    assert row(email)["complained_at"] == now and Event.objects.count() == 1


def test_a_mail_to_the_unsubscribe_address_unsubscribes_like_the_link(account):
    email = sent_email(account)
    outcome = services.process_message(account=account, raw=reports.unsubscribe_request(email_id=email.pk))
    assert outcome.kind == Kind.UNSUBSCRIBE and outcome.result == Result.RECORDED
    assert Contact.objects.get(pk=email.contact_id).status == Contact.Status.UNSUBSCRIBED
    assert Email.objects.get(pk=email.pk).unsubscribed_at is not None
    assert Event.objects.filter(kind=Event.Kind.UNSUBSCRIBE).count() == 1

    again = services.process_message(account=account, raw=reports.unsubscribe_request(email_id=email.pk))
    assert again.result == Result.ALREADY_RECORDED and Event.objects.count() == 1


class ListReader:
    """A mailbox held in a list, with the MailboxReader methods bounces.services reads through."""

    def __init__(self, messages):
        self.held = dict(messages)
        self.done_keys = []

    def messages(self):
        for key, raw in list(self.held.items()):
            yield type("Message", (), {"key": key, "raw": raw})()

    def done(self, key):
        self.done_keys.append(key)
        del self.held[key]


def test_a_mailbox_pass_processes_every_message_and_marks_each_done(account):
    email, other = sent_email(account), sent_email(account, "ravi@example.in")
    reader = ListReader(
        {
            "1": reports.dsn(to=verp_of(email), recipient="asha@example.in"),
            "2": reports.dsn(to=verp_of(email), recipient="asha@example.in"),  # the same report again
            "3": b"From: someone@example.com\r\nSubject: thanks!\r\n\r\nA reply to the bounce address.\r\n",
            "4": reports.dsn(to=verp_of(other), recipient="ravi@example.in", status="4.2.2", diagnostic="x; full"),
            "5": b"\x00\xff not mail at all",
        }
    )

    figures = services.process_mailbox(account=account, reader=reader)

    assert figures == services.Figures(
        read=5,
        recorded={Kind.HARD: 1, Kind.SOFT: 1},
        already_recorded=1,
        unmatched=0,
        ignored=2,
        suppressed=1,
        errors=0,
    )
    assert reader.done_keys == ["1", "2", "3", "4", "5"] and not reader.held
