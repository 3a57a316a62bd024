"""The bounce mailboxes read on schedule and by `manage.py process_bounces`: a real Dovecot holds the
DSN mailed to a campaign email's VERP address; reading it bounces the contact and empties the mailbox,
a second read finds nothing, one mailbox is never read by two passes at once, and every refusal says why."""

import io

import pytest
from django.core.cache import cache
from django.core.management import CommandError, call_command
from django_celery_beat.models import PeriodicTask

from bounces import tasks
from campaigns.models import Email
from config.celery import app
from contacts.models import Contact
from sending import services as account_services
from sending.models import BounceMailbox
from tests.bounces import reports
from tests.dovecot import start_dovecot

BOUNCES = "bounces@mail.alice.example"


@pytest.fixture
def dovecot(settings):
    server = start_dovecot()
    settings.SMTP_CA_FILE = str(server.cert_file)
    yield server
    server.stop()


@pytest.fixture
def bounced(make_engine, dovecot):
    """A campaign email to asha@example.in, sent; its DSN waits in the account's bounce mailbox."""
    engine = make_engine(bounce_address=BOUNCES)
    campaign = engine.campaign(engine.contact_list("asha@example.in", "ravi@example.in"))
    engine.send_now(campaign)
    engine.tick()
    engine.handler.wait_for(lambda h: len(h.messages) == 2)
    (received,) = [m for m in engine.handler.messages if m.rcpt_tos == ["asha@example.in"]]
    dovecot.deliver(reports.dsn(to=received.mail_from, recipient="asha@example.in"))
    mailbox = account_services.configure_bounce_mailbox(
        account=engine.account,
        protocol="imap",
        host=dovecot.host,
        port=dovecot.imaps_port,
        security="ssl",
        username=dovecot.username,
        password=dovecot.password,
    )
    return engine, campaign, mailbox


def run(*args):
    out = io.StringIO()
    call_command("process_bounces", *args, stdout=out, stderr=io.StringIO())
    return out.getvalue()


def test_process_bounces_reads_the_mailbox_bounces_the_contact_and_empties_it(bounced, dovecot):
    engine, campaign, mailbox = bounced

    first = run("--account", str(engine.account.pk))

    assert "1 read; recorded: 1 hard" in first and "1 contact(s) suppressed" in first
    assert Contact.objects.get(owner=engine.owner, email="asha@example.in").status == Contact.Status.BOUNCED
    assert Contact.objects.get(owner=engine.owner, email="ravi@example.in").status == Contact.Status.SUBSCRIBED
    assert engine.email(campaign, "asha@example.in").bounce_kind == Email.BounceKind.HARD
    assert dovecot.stored() == []
    mailbox.refresh_from_db()
    assert (mailbox.processed_count, mailbox.last_error) == (1, "")
    assert "0 read" in run()  # every enabled mailbox; nothing left in this one


def test_the_periodic_task_reads_every_enabled_mailbox(bounced, dovecot):
    engine, campaign, mailbox = bounced
    call_command("setup_schedules", stdout=io.StringIO())
    scheduled = PeriodicTask.objects.get(name="Read bounce mailboxes")
    assert scheduled.task in app.tasks  # the name beat publishes is a task the workers know
    assert scheduled.interval.every == 60

    tasks.read_mailbox(mailbox.pk)

    assert Contact.objects.get(owner=engine.owner, email="asha@example.in").status == Contact.Status.BOUNCED
    assert dovecot.stored() == []


def test_a_mailbox_being_read_is_not_read_again_at_once(bounced, dovecot):
    engine, campaign, mailbox = bounced
    cache.add(f"bounces:reading:{mailbox.pk}", 1, timeout=60)  # another pass holds it
    try:
        assert "skipped, another read of it is running" in run("--account", str(engine.account.pk))
    finally:
        cache.delete(f"bounces:reading:{mailbox.pk}")
    assert len(dovecot.stored()) == 1
    assert Contact.objects.get(owner=engine.owner, email="asha@example.in").status == Contact.Status.SUBSCRIBED


def test_a_mailbox_that_cannot_be_read_fails_the_command_and_keeps_its_mail(bounced, dovecot):
    engine, campaign, mailbox = bounced
    mailbox.set_password("not-the-password")
    mailbox.save(update_fields=["password"])

    with pytest.raises(CommandError, match="1 of 1 bounce mailbox"):
        run()

    mailbox.refresh_from_db()
    assert "refused the login" in mailbox.last_error
    assert len(dovecot.stored()) == 1


def test_an_account_without_a_readable_mailbox_is_told_why(db, make_engine):
    engine = make_engine()
    with pytest.raises(CommandError, match="There is no SMTP account with id 999999"):
        run("--account", "999999")
    with pytest.raises(CommandError, match="has no bounce mailbox"):
        run("--account", str(engine.account.pk))
    BounceMailbox.objects.create(account=engine.account, host="imap.example.org", username="b", enabled=False)
    with pytest.raises(CommandError, match="is disabled"):
        run("--account", str(engine.account.pk))
    assert "No bounce mailbox is enabled." in run()
