"""A real bounce end to end: Postfix accepts a message for an unknown local user, bounces it after
queueing, delivers the DSN to the VERP address it came from into Dovecot's mailbox, and the project
reads it back over IMAPS and POP3S: a multipart/report with its message/delivery-status."""

import email
import email.policy
import smtplib
import time

import pytest

from sending import services
from sending.mailbox import open_mailbox
from tests.dovecot import start_dovecot
from tests.factories import SmtpAccountFactory
from tests.postfix import BOUNCE_DOMAIN, UNKNOWN_USER_DOMAIN, start_bounce_postfix

DSN_SECONDS = 60
VERP_SENDER = f"bounces+e42-7@{BOUNCE_DOMAIN}"
UNKNOWN = f"nobody-here@{UNKNOWN_USER_DOMAIN}"


@pytest.fixture(scope="module")
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


def send_to_unknown_user(postfix, message_id):
    message = (
        f"From: Alice <alice@example.com>\r\nTo: <{UNKNOWN}>\r\nSubject: Our news\r\n"
        f"Message-ID: <{message_id}>\r\n\r\nHello.\r\n"
    )
    with smtplib.SMTP(postfix.host, postfix.port, timeout=30) as client:
        refused = client.sendmail(VERP_SENDER, [UNKNOWN], message)
    assert refused == {}  # accepted: the bounce comes after queueing


def wait_for_messages(dovecot, count, postfix):
    deadline = time.monotonic() + DSN_SECONDS
    while len(dovecot.stored()) < count:
        if time.monotonic() > deadline:
            pytest.fail(f"no DSN in the mailbox after {DSN_SECONDS} s; Postfix's log:\n{postfix.log()}")
        time.sleep(0.1)


def delivery_status(raw):
    """The DSN's parts: the message, its per-message fields and its (only) per-recipient fields."""
    dsn = email.message_from_bytes(raw, policy=email.policy.default)
    (status_part,) = [part for part in dsn.walk() if part.get_content_type() == "message/delivery-status"]
    per_message, per_recipient = status_part.get_payload()
    return dsn, per_message, per_recipient


@pytest.mark.django_db
@pytest.mark.parametrize("protocol,port", [("imap", "imaps_port"), ("pop3", "pop3s_port")])
def test_postfixs_dsn_lands_in_dovecot_and_is_read_back(servers, protocol, port, settings):
    dovecot, postfix = servers
    settings.SMTP_CA_FILE = str(dovecot.cert_file)
    message_id = f"campaign-1-email-{protocol}@example.com"
    send_to_unknown_user(postfix, message_id)
    wait_for_messages(dovecot, 1, postfix)
    mailbox = services.configure_bounce_mailbox(
        account=SmtpAccountFactory(),
        protocol=protocol,
        host=dovecot.host,
        port=getattr(dovecot, port),
        security="ssl",
        username=dovecot.username,
        password=dovecot.password,
    )

    with open_mailbox(mailbox) as reader:
        (message,) = reader.messages()
        reader.done(message.key)

    dsn, per_message, per_recipient = delivery_status(message.raw)
    assert dsn.get_content_type() == "multipart/report"
    assert dsn.get_param("report-type") == "delivery-status"
    assert dsn["To"] == VERP_SENDER
    assert dsn["Return-Path"] == "<>"  # a DSN has the null sender: nothing bounces back from it
    assert "MAILER-DAEMON" in dsn["From"]
    assert per_message["Reporting-MTA"] == "dns; postfix.test.example"
    assert per_recipient["Final-Recipient"] == f"rfc822; {UNKNOWN}"
    assert per_recipient["Action"] == "failed"
    assert per_recipient["Status"] == "5.1.1"
    assert "unknown user" in per_recipient["Diagnostic-Code"]
    returned = [part for part in dsn.walk() if part.get_content_type() in ("message/rfc822", "text/rfc822-headers")]
    assert message_id in returned[0].as_string()
    assert dovecot.stored() == []
    mailbox.refresh_from_db()
    assert mailbox.processed_count == 1
