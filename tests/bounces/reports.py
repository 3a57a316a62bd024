"""Delivery reports as receivers write them, built for our own emails: DSNs (RFC 3464), ARF
complaints (RFC 5965) and a mail to the List-Unsubscribe address."""

from email.utils import format_datetime

from django.utils import timezone

from delivery import message as message_builder
from sending.models import SmtpAccount
from tracking import tokens

BOUNDARY = "==report-boundary=="


def original_headers(*, to, message_id, return_path=None, subject="Hello"):
    lines = []
    if return_path:
        lines.append(f"Return-Path: <{return_path}>")
    lines += [
        "From: Alice Ltd <news@alice.example>",
        f"To: {to}",
        f"Subject: {subject}",
        f"Message-ID: {message_id}",
        f"Date: {format_datetime(timezone.now())}",
    ]
    return "\r\n".join(lines) + "\r\n"


def dsn(
    *,
    to,
    recipient,
    status="5.1.1",
    action="failed",
    diagnostic="smtp; 550 5.1.1 <{r}>: Recipient address rejected: User unknown",
    original=None,
):
    """A DSN mailed to `to` (the envelope sender: a VERP address) about `recipient`; `original`: the
    original message's headers, included as text/rfc822-headers."""
    diagnostic = diagnostic.format(r=recipient)
    parts = [
        f"--{BOUNDARY}\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n"
        f"This is the mail system at host mx.example.net.\r\n\r\nI'm sorry to have to inform you that your "
        f"message could not be delivered to one or more recipients.\r\n\r\n<{recipient}>: {diagnostic}\r\n",
        f"--{BOUNDARY}\r\nContent-Type: message/delivery-status\r\n\r\n"
        "Reporting-MTA: dns; mx.example.net\r\nArrival-Date: Mon, 7 Dec 2026 10:00:00 +0000\r\n\r\n"
        f"Final-Recipient: rfc822; {recipient}\r\nOriginal-Recipient: rfc822;{recipient}\r\n"
        f"Action: {action}\r\nStatus: {status}\r\nRemote-MTA: dns; mx.example.net\r\n"
        f"Diagnostic-Code: {diagnostic}\r\n",
    ]
    if original is not None:
        parts.append(f"--{BOUNDARY}\r\nContent-Type: text/rfc822-headers\r\n\r\n{original}")
    return _report(
        "delivery-status",
        headers=[
            "From: MAILER-DAEMON@mx.example.net (Mail Delivery System)",
            f"To: {to}",
            "Subject: Undelivered Mail Returned to Sender",
            "Auto-Submitted: auto-replied",
        ],
        parts=parts,
    )


def arf(*, to, recipient, original, feedback_type="abuse", original_mail_from=None):
    """An ARF complaint mailed to `to` about a message to `recipient` (its full headers in `original`)."""
    fields = (
        f"Feedback-Type: {feedback_type}\r\nUser-Agent: ExampleFBL/1.0\r\nVersion: 1\r\n"
        + (f"Original-Mail-From: <{original_mail_from}>\r\n" if original_mail_from else "")
        + f"Original-Rcpt-To: <{recipient}>\r\nArrival-Date: Mon, 7 Dec 2026 10:00:00 +0000\r\n"
        "Reported-Domain: alice.example\r\nSource-IP: 192.0.2.1\r\n"
    )
    return _report(
        "feedback-report",
        headers=["From: <fbl@isp.example>", f"To: {to}", "Subject: FW: Hello"],
        parts=[
            f"--{BOUNDARY}\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n"
            "This is an email abuse report for an email message received from IP 192.0.2.1.\r\n",
            f"--{BOUNDARY}\r\nContent-Type: message/feedback-report\r\n\r\n{fields}",
            f"--{BOUNDARY}\r\nContent-Type: message/rfc822\r\nContent-Disposition: inline\r\n\r\n"
            f"{original}\r\nThe original body.\r\n",
        ],
    )


def unsubscribe_request(*, email_id, sender="asha@example.in", bounce_address="bounces@mail.alice.example"):
    """What a mail client sends for the List-Unsubscribe mailto of this email (sent by an account with
    this bounce address)."""
    mailto = message_builder.unsubscribe_mailto(email_id, account=SmtpAccount(bounce_address=bounce_address))
    address, _, query = mailto.removeprefix("mailto:").partition("?subject=")
    subject = query.replace("%20", " ")
    assert subject == f"unsubscribe {tokens.unsubscribe_token(email_id)}"
    return (
        f"From: {sender}\r\nTo: {address}\r\nSubject: {subject}\r\nMIME-Version: 1.0\r\n"
        "Content-Type: text/plain; charset=us-ascii\r\n\r\nThis message was sent automatically.\r\n"
    ).encode("ascii")


def _report(report_type, *, headers, parts):
    text = (
        "\r\n".join(headers)
        + f"\r\nMIME-Version: 1.0\r\nContent-Type: multipart/report; report-type={report_type};\r\n"
        f' boundary="{BOUNDARY}"\r\n\r\n' + "\r\n".join(parts) + f"\r\n--{BOUNDARY}--\r\n"
    )
    return text.encode("utf-8")
