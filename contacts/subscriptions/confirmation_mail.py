"""The confirmation email of a subscription form: one small message through the list owner's SMTP account.

A separate path from campaign sending: no Email row, no tracking, no dispatcher; one message, one
connection, the SMTP dialogue of sending.session.
"""

import email.policy
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid

from django.conf import settings
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

from contacts.subscriptions import tokens
from sending import smtp
from sending.addresses import transport_address
from sending.session import SmtpSession, SmtpUtf8Unsupported


class ConfirmationNotSent(Exception):
    """The SMTP server could not be reached or refused the message; the text says why, for the page."""


def confirmation_url(*, request) -> str:
    token = tokens.confirm_token(request_id=request.pk, email=request.email)
    return settings.SITE_URL + reverse("subscriptions:confirm", args=[token])


def build(*, request, account) -> bytes:
    form = request.form
    context = {
        "form": form,
        "organization": form.owner.organization or account.from_name or form.owner.username,
        "url": confirmation_url(request=request),
        "hours": settings.SUBSCRIPTION_CONFIRM_MAX_AGE // 3600,
    }
    message = EmailMessage(policy=email.policy.SMTPUTF8 if not request.email.isascii() else email.policy.SMTP)
    message["From"] = f"{account.from_name} <{account.from_email}>" if account.from_name else account.from_email
    message["To"] = request.email
    if account.reply_to:
        message["Reply-To"] = account.reply_to
    message["Subject"] = f"Confirm your subscription: {form.title}"
    message["Date"] = format_datetime(timezone.now())
    message["Message-ID"] = make_msgid(domain=settings.MESSAGE_ID_DOMAIN or "localhost")
    message.set_content(render_to_string("subscriptions/email/confirm.txt", context))
    return message.as_bytes()


def send(*, request) -> None:
    """Mail the confirmation link of `request`; raises ConfirmationNotSent."""
    account = request.form.smtp_account
    raw = build(request=request, account=account)
    session = SmtpSession(account)
    try:
        session.open()
        code, text = session.transact(transport_address(account.from_email), transport_address(request.email), raw)
    except SmtpUtf8Unsupported as exc:
        raise ConfirmationNotSent("This address cannot be written to by our mail server; try another.") from exc
    except smtp.OPEN_ERRORS as exc:
        raise ConfirmationNotSent(smtp.describe_open_failure(exc, account)) from exc
    finally:
        session.close()
    if not 200 <= code < 300:
        raise ConfirmationNotSent(text)
