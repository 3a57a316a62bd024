"""A mailbox pass records its reports a chunk at a time, one transaction each, and removes a chunk's
messages only after its COMMIT: a pass cut between the two is repeated to no effect, a pass cut inside
a chunk loses nothing, and inside a chunk each report acts as it would alone (another marketer's token
changes nothing, a DSN read twice is recorded once, soft bounces count toward the limit)."""

from datetime import timedelta

import pytest
from django.db import DatabaseError, connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from bounces import services
from bounces.parsing import Kind
from campaigns import ledger
from campaigns.models import Email
from contacts.models import Contact
from sending import mailbox_sessions
from sending import services as account_services
from sending.mailbox import MailboxError, MailboxReader
from sending.models import BounceMailbox
from tests.bounces import reports
from tests.bounces.test_services import BOUNCES, REPORT_FIELDS, ListReader, sent_email, verp_of
from tests.dovecot import start_dovecot
from tests.factories import SmtpAccountFactory
from tracking.models import Event

S = Email.Status


@pytest.fixture
def account(marketer):
    return SmtpAccountFactory(owner=marketer, from_email="news@alice.example", bounce_address=BOUNCES)


@pytest.fixture
def chunks_of_two(monkeypatch):
    monkeypatch.setattr(services, "CHUNK_MESSAGES", 2)


def hard(email):
    return reports.dsn(to=verp_of(email), recipient=email.to_email)


def soft(email):
    return reports.dsn(
        to=verp_of(email), recipient=email.to_email, status="4.2.2", diagnostic="smtp; 452 4.2.2 Mailbox full"
    )


def complaint(email):
    original = reports.original_headers(to=email.to_email, message_id=email.message_id, return_path=verp_of(email))
    return reports.arf(to="fbl@alice.example", recipient=email.to_email, original=original)


def state(owner):
    """Everything a report may change, for a before/after comparison."""
    return {
        "emails": list(
            Email.objects.filter(campaign__owner=owner).order_by("pk").values("pk", "status", *REPORT_FIELDS)
        ),
        "contacts": list(
            Contact.objects.filter(owner=owner).order_by("pk").values("pk", "status", "status_changed_at", "updated_at")
        ),
        "events": list(Event.objects.filter(campaign__owner=owner).order_by("pk").values("email_id", "kind")),
    }


# --- a real mailbox, cut between the COMMIT and the removal -------------------------------------------


@pytest.fixture(scope="module")
def dovecot_server():
    server = start_dovecot()
    yield server
    server.stop()


@pytest.fixture
def dovecot(dovecot_server, settings):
    for path in dovecot_server.stored():
        path.unlink()
    settings.SMTP_CA_FILE = str(dovecot_server.cert_file)
    return dovecot_server


def bounce_mailbox(account, dovecot, protocol):
    return account_services.configure_bounce_mailbox(
        account=account,
        protocol=protocol,
        host=dovecot.host,
        port=dovecot.imaps_port if protocol == "imap" else dovecot.pop3s_port,
        security="ssl",
        username=dovecot.username,
        password=dovecot.password,
    )


def cut(session):
    """The connection dropped as a killed worker drops it: no EXPUNGE, LOGOUT or QUIT."""
    if isinstance(session, mailbox_sessions.ImapSession):
        session.conn.shutdown()
    else:
        session.conn.close()


@pytest.mark.django_db
@pytest.mark.parametrize("protocol", ["imap", "pop3"])
def test_a_pass_cut_after_its_commits_leaves_the_messages_and_the_next_pass_changes_nothing(
    account, dovecot, protocol, chunks_of_two
):
    asha, ravi, meera = sent_email(account), sent_email(account, "ravi@example.in"), sent_email(account, "meera@x.in")
    for raw in (hard(asha), soft(ravi), complaint(meera), hard(asha), soft(ravi)):
        dovecot.deliver(raw)
    mailbox = bounce_mailbox(account, dovecot, protocol)

    session = mailbox_sessions.connect(mailbox)
    first = services.process_mailbox(account=account, reader=MailboxReader(session, mailbox))
    cut(session)

    assert first == services.Figures(
        read=5, recorded={Kind.HARD: 1, Kind.SOFT: 1, Kind.COMPLAINT: 1}, already_recorded=2, suppressed=2
    )
    assert len(dovecot.stored()) == 5  # every report committed, no message removed
    recorded = state(account.owner)
    assert [e["kind"] for e in recorded["events"]] == ["bounce", "bounce", "complaint"]

    second = services.read_mailbox(mailbox=BounceMailbox.objects.get(pk=mailbox.pk), now=timezone.now())

    assert second == services.Figures(read=5, already_recorded=5)
    assert state(account.owner) == recorded
    assert dovecot.stored() == []


def test_a_pass_cut_inside_a_chunk_records_nothing_of_it_and_the_next_records_all(account):
    asha, ravi = sent_email(account), sent_email(account, "ravi@example.in")
    before = state(account.owner)

    class CutReader(ListReader):
        def messages(self):
            yield from list(super().messages())[:1]
            raise MailboxError("The server did not answer within 30 s (MAILBOX_TIMEOUT).")

    reader = CutReader({"1": hard(asha), "2": hard(ravi)})
    with pytest.raises(MailboxError):
        services.process_mailbox(account=account, reader=reader)

    assert state(account.owner) == before and reader.done_keys == []  # the first chunk was never complete

    reader = ListReader(reader.held)
    assert services.process_mailbox(account=account, reader=reader).recorded == {Kind.HARD: 2}
    assert reader.done_keys == ["1", "2"]
    assert set(Contact.objects.filter(owner=account.owner).values_list("status", flat=True)) == {"bounced"}


# --- what a chunk holds ---------------------------------------------------------------------------


def test_another_marketers_token_in_a_chunk_changes_nothing_of_theirs(account, other_marketer):
    theirs = sent_email(SmtpAccountFactory(owner=other_marketer, bounce_address=BOUNCES), "ravi@example.in")
    ours = sent_email(account)
    before = state(other_marketer)
    forged = reports.dsn(to=verp_of(ours).replace("+", "+0", 1), recipient="asha@example.in")
    reader = ListReader({"1": hard(theirs), "2": hard(ours), "3": complaint(theirs), "4": forged})

    figures = services.process_mailbox(account=account, reader=reader)

    assert figures == services.Figures(read=4, recorded={Kind.HARD: 1}, unmatched=3, suppressed=1)
    assert state(other_marketer) == before
    assert Contact.objects.get(pk=theirs.contact_id).status == Contact.Status.SUBSCRIBED
    assert Contact.objects.get(pk=ours.contact_id).status == Contact.Status.BOUNCED
    assert list(Event.objects.values_list("email_id", flat=True)) == [ours.pk]
    assert reader.done_keys == ["1", "2", "3", "4"]  # not ours: nothing to keep them for


def test_a_duplicate_dsn_in_a_chunk_is_recorded_once(account):
    asha = sent_email(account)
    now = timezone.now()
    reader = ListReader({"1": hard(asha), "2": hard(asha), "3": complaint(asha), "4": complaint(asha)})

    figures = services.process_mailbox(account=account, reader=reader, now=now)

    assert figures == services.Figures(
        read=4, recorded={Kind.HARD: 1, Kind.COMPLAINT: 1}, already_recorded=2, suppressed=1
    )
    row = Email.objects.values(*REPORT_FIELDS).get(pk=asha.pk)
    assert (row["bounce_kind"], row["bounced_at"], row["complained_at"]) == ("hard", now, now)
    assert sorted(Event.objects.values_list("kind", flat=True)) == ["bounce", "complaint"]
    # The first report that suppresses a contact gives its reason.
    assert Contact.objects.get(pk=asha.contact_id).status == Contact.Status.BOUNCED


def test_a_soft_then_a_hard_bounce_of_one_email_in_a_chunk_apply_in_order(account):
    asha = sent_email(account)
    reader = ListReader({"1": soft(asha), "2": hard(asha), "3": soft(asha)})

    figures = services.process_mailbox(account=account, reader=reader)

    assert figures == services.Figures(read=3, recorded={Kind.SOFT: 1, Kind.HARD: 1}, already_recorded=1, suppressed=1)
    assert Email.objects.get(pk=asha.pk).bounce_status == "5.1.1"
    assert Event.objects.filter(kind=Event.Kind.BOUNCE).count() == 2


def test_soft_bounces_in_one_chunk_count_toward_the_limit_with_the_earlier_ones(account, settings):
    settings.BOUNCE_SOFT_LIMIT, settings.BOUNCE_SOFT_DAYS = 3, 7
    now = timezone.now()
    earlier, first, second = (sent_email(account) for _ in range(3))
    ravi = [sent_email(account, "ravi@example.in") for _ in range(2)]
    assert services.process_message(account=account, raw=soft(earlier), now=now - timedelta(days=1)).suppressed is False

    reader = ListReader({"1": soft(first), "2": soft(ravi[0]), "3": soft(second), "4": soft(ravi[1])})
    figures = services.process_mailbox(account=account, reader=reader, now=now)

    assert figures.recorded == {Kind.SOFT: 4} and figures.suppressed == 1
    assert Contact.objects.get(pk=first.contact_id).status == Contact.Status.BOUNCED  # its third within 7 days
    assert Contact.objects.get(pk=ravi[0].contact_id).status == Contact.Status.SUBSCRIBED  # two


def test_a_chunk_is_a_few_statements_whatever_its_size(account):
    emails = [sent_email(account, f"reader{n}@example.in") for n in range(40)]
    raws = [(hard if n % 3 else soft)(email) for n, email in enumerate(emails)] + [complaint(emails[1])]
    reports_ = [services.parsing.parse(raw) for raw in raws]

    with CaptureQueriesContext(connection) as queries:
        figures = services.process_reports(account=account, reports=reports_, now=timezone.now())

    assert sum(figures.recorded.values()) == 41 and figures.suppressed == 26
    assert len(queries) <= 15, [q["sql"][:80] for q in queries]


def test_a_chunk_whose_transaction_fails_is_processed_one_message_at_a_time(account, monkeypatch):
    asha, ravi = sent_email(account), sent_email(account, "ravi@example.in")

    def refused(**kwargs):
        raise DatabaseError("could not serialize access")

    monkeypatch.setattr(ledger, "record_bounces", refused)
    reader = ListReader({"1": hard(asha), "2": complaint(ravi), "3": hard(asha)})

    figures = services.process_mailbox(account=account, reader=reader)

    assert figures == services.Figures(
        read=3, recorded={Kind.HARD: 1, Kind.COMPLAINT: 1}, already_recorded=1, suppressed=2
    )
    assert reader.done_keys == ["1", "2", "3"]
    assert Email.objects.get(pk=asha.pk).bounce_kind == "hard"
