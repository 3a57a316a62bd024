"""The bounce loop against Debian's Postfix: it accepts every message with 250, then its own delivery
to the (aiosmtpd) remote fails, and it mails a DSN to the VERP envelope sender. Those reports,
read back, bounce the right contacts."""

import time

import pytest

from bounces import services
from bounces.parsing import Kind
from campaigns.models import Email
from contacts.models import Contact
from sending import verp
from tests.engine import Clock, Engine, RecordingSleep
from tests.factories import SmtpAccountFactory
from tests.postfix import start_postfix
from tests.smtp_server import RecordingHandler

BOUNCES = "bounces@verp.test"
REMOTE_REPLIES = {
    "ghost@nosuch.test": (550, "5.1.1 <ghost@nosuch.test>: Recipient address rejected: User unknown"),
    "asha@full.test": (452, "4.2.2 <asha@full.test>: Recipient address rejected: Mailbox full"),
}


@pytest.fixture
def remote(smtp_server_factory):
    """The remote MX Postfix relays to, and where its reports to the VERP address arrive too."""
    return smtp_server_factory(RecordingHandler(rcpt_replies=REMOTE_REPLIES))


@pytest.fixture
def postfix(remote):
    instance = start_postfix(
        main_cf={
            "default_transport": f"smtp:[{remote.host}]:{remote.port}",
            "smtp_tls_security_level": "none",
            # One delivery try: a 4xx goes back to the sender at once, as it would after days.
            "maximal_queue_lifetime": "0",
            "bounce_queue_lifetime": "0",
        }
    )
    yield instance
    instance.stop()


def reports_at(handler):
    return [m for m in handler.messages if m.rcpt_tos[0].startswith("bounces+")]


def wait_for_reports(handler, n, timeout=60):
    deadline = time.monotonic() + timeout
    while len(reports_at(handler)) < n and time.monotonic() < deadline:
        time.sleep(0.2)
    return reports_at(handler)


def test_postfix_dsns_mailed_to_the_verp_sender_bounce_the_right_contacts(
    db, marketer, allow_local_smtp, remote, postfix
):
    account = SmtpAccountFactory(
        owner=marketer,
        host=postfix.host,
        port=postfix.port,
        security="none",
        username="",
        from_email="news@alice.example",
        bounce_address=BOUNCES,
        max_per_minute=6000,
    )
    engine = Engine(server=remote, account=account, owner=marketer, clock=Clock(), sleep=RecordingSleep())
    campaign = engine.campaign(engine.contact_list("ghost@nosuch.test", "asha@full.test", "ravi@fine.test"))
    engine.send_now(campaign)
    engine.tick()
    assert set(engine.statuses(campaign).values()) == {Email.Status.SENT}  # Postfix said 250 to each

    received = wait_for_reports(remote.handler, 2)
    assert len(received) == 2, postfix.log()
    emails = engine.emails(campaign)
    assert {verp.parse(r.rcpt_tos[0]) for r in received} == {
        emails["ghost@nosuch.test"].pk,
        emails["asha@full.test"].pk,
    }

    outcomes = {services.process_message(account=account, raw=r.content) for r in received}

    assert {(o.kind, o.email_id, o.suppressed) for o in outcomes} == {
        (Kind.HARD, emails["ghost@nosuch.test"].pk, True),
        (Kind.SOFT, emails["asha@full.test"].pk, False),  # one soft bounce: under the limit
    }
    statuses = dict(Contact.objects.filter(owner=marketer).values_list("email", "status"))
    assert statuses == {
        "ghost@nosuch.test": Contact.Status.BOUNCED,
        "asha@full.test": Contact.Status.SUBSCRIBED,
        "ravi@fine.test": Contact.Status.SUBSCRIBED,
    }
    rows = {e.to_email: (e.status, e.bounce_kind, e.bounce_status) for e in Email.objects.filter(campaign=campaign)}
    assert rows == {
        "ghost@nosuch.test": ("sent", "hard", "5.1.1"),
        "asha@full.test": ("sent", "soft", "4.2.2"),
        "ravi@fine.test": ("sent", "", ""),
    }
