"""Builds the MIME message of one Email at send time (the body is never stored per row)."""

import re
from email.utils import formataddr, make_msgid

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.template import Context, Engine
from django.utils.html import strip_tags

# No loaders and no extra libraries: a campaign template reaches the recipient's
# variables and nothing else.
_ENGINE = Engine(loaders=[], libraries={}, debug=False, autoescape=True)


def new_message_id():
    return make_msgid(domain=settings.MESSAGE_ID_DOMAIN or "localhost")


def recipient_context(email):
    contact = email.contact
    attributes = dict(contact.attributes or {}) if contact is not None else {}
    return {**attributes, "name": email.to_name, "email": email.to_email}


def render(template_source, context, *, autoescape=True):
    template = _ENGINE.from_string(template_source or "")
    return template.render(Context(context, autoescape=autoescape))


def html_to_text(html):
    text = re.sub(r"<a\s[^>]*href=[\"']([^\"']+)[\"'][^>]*>(.*?)</a>", r"\2 (\1)", html, flags=re.I | re.S)
    text = re.sub(r"<(br|/p|/div|/h[1-6]|/li|/tr)\b[^>]*>", "\n", text, flags=re.I)
    return re.sub(r"\n{3,}", "\n\n", strip_tags(text)).strip()


def build(*, email, campaign, account):
    """Return (from_address, raw_bytes) ready for SMTP."""
    context = recipient_context(email)
    subject = render(campaign.subject, context, autoescape=False).replace("\r", " ").replace("\n", " ")
    html = render(campaign.body_html, context)
    text = render(campaign.body_text, context, autoescape=False) if campaign.body_text else html_to_text(html)
    headers = {"Message-ID": email.message_id}
    message = EmailMultiAlternatives(
        subject=subject,
        body=text,
        from_email=formataddr((account.from_name, account.from_email)),
        to=[formataddr((email.to_name, email.to_email))],
        reply_to=[account.reply_to] if account.reply_to else None,
        headers=headers,
    )
    message.attach_alternative(html, "text/html")
    return account.from_email, message.message().as_bytes(linesep="\r\n")
