"""The whole loop with real servers: a campaign sent through Postfix with a VERP envelope sender,
Postfix's bounce after queueing delivered into Dovecot, the mailbox read over IMAPS
(sending.mailbox) and processed (bounces.services.process_mailbox): the contact is bounced, the
email records it, and the mailbox is emptied."""

import time

import pytest

from bounces import services as bounce_services
from bounces.parsing import Kind
from campaigns.models import Email
from contacts.models import Contact
from sending import services as account_services
from sending.mailbox import open_mailbox
from tests.dovecot import start_dovecot
from tests.engine import Clock, Engine, RecordingSleep
from tests.factories import SmtpAccountFactory
from tests.postfix import BOUNCE_DOMAIN, UNKNOWN_USER_DOMAIN, start_bounce_postfix

DSN_SECONDS = 60
UNKNOWN = f"nobody-here@{UNKNOWN_USER_DOMAIN}"


@pytest.fixture
def servers():
    dovecot = start_dovecot()
    try:
        postfix = start_bounce_postfix(dovecot=dovecot)
    except BaseException:
        dovecot.stop()
        raise
    yield dovecot, postfix
    postfix.stop()
    dovecot.stop()


def test_a_campaign_bounce_comes_back_through_dovecot_and_bounces_the_contact(
    db, marketer, allow_local_smtp, servers, settings
):
    dovecot, postfix = servers
    settings.SMTP_CA_FILE = str(dovecot.cert_file)
    account = SmtpAccountFactory(
        owner=marketer,
        host=postfix.host,
        port=postfix.port,
        security="none",
        username="",
        from_email="news@alice.example",
        bounce_address=f"bounces@{BOUNCE_DOMAIN}",
        max_per_minute=6000,
    )
    engine = Engine(server=None, account=account, owner=marketer, clock=Clock(), sleep=RecordingSleep())
    campaign = engine.campaign(engine.contact_list(UNKNOWN))
    engine.send_now(campaign)
    engine.tick()
    email = engine.email(campaign, UNKNOWN)
    assert email.status == Email.Status.SENT  # Postfix said 250

    deadline = time.monotonic() + DSN_SECONDS
    while not dovecot.stored():
        if time.monotonic() > deadline:
            pytest.fail(f"no DSN in the mailbox after {DSN_SECONDS} s; Postfix's log:\n{postfix.log()}")
        time.sleep(0.1)
    mailbox = account_services.configure_bounce_mailbox(
        account=account,
        protocol="imap",
        host=dovecot.host,
        port=dovecot.imaps_port,
        security="ssl",
        username=dovecot.username,
        password=dovecot.password,
    )

    with open_mailbox(mailbox) as reader:
        figures = bounce_services.process_mailbox(account=account, reader=reader)

    assert figures == bounce_services.Figures(read=1, recorded={Kind.HARD: 1}, suppressed=1)
    assert Contact.objects.get(owner=marketer, email=UNKNOWN).status == Contact.Status.BOUNCED
    email.refresh_from_db()
    assert (email.status, email.bounce_kind, email.bounce_status) == (Email.Status.SENT, "hard", "5.1.1")
    assert dovecot.stored() == []
