"""The email service providers (ESPs) whose webhooks report bounces, complaints and deliveries.

An SMTP account relayed by an ESP names it (`SmtpAccount.esp`): every campaign message then carries
the ESP's metadata header with the Email's id, which the ESP echoes in its webhook events, so an
event names the exact row it is about. What each ESP signs its webhooks with, and where its console
sets them up, is here too; the receiving side is bounces.esp.
"""

import json
from dataclasses import dataclass

from cryptography.hazmat.primitives import serialization
from django.db import models


class Esp(models.TextChoices):
    AMAZON_SES = "amazon_ses", "Amazon SES (through SNS)"
    SENDGRID = "sendgrid", "SendGrid"
    MAILGUN = "mailgun", "Mailgun"
    POSTMARK = "postmark", "Postmark"
    BREVO = "brevo", "Brevo"
    MAILJET = "mailjet", "Mailjet"
    SPARKPOST = "sparkpost", "SparkPost"
    MANDRILL = "mandrill", "Mandrill (Mailchimp Transactional)"
    POSTAL = "postal", "Postal"
    MAILERSEND = "mailersend", "MailerSend"


@dataclass(frozen=True)
class EspProfile:
    # What the ESP signs its webhooks with, as its console calls it; "" when only basic auth protects them.
    signing_key_label: str
    # Whether a webhook of this ESP is refused without the signing key (else the key is optional).
    signing_key_required: bool
    # Where in the ESP's console the webhook is set up, and what to tick.
    setup_steps: tuple[str, ...]


PROFILES: dict[str, EspProfile] = {
    Esp.AMAZON_SES: EspProfile(
        signing_key_label="",
        signing_key_required=False,
        setup_steps=(
            "In Amazon SNS, create a topic and an HTTPS subscription to the webhook URL; it is confirmed here at once.",
            "In Amazon SES, Configuration: Identities, your sending domain, Notifications: set the Bounce, "
            "Complaint and Delivery feedback to that topic, with 'Include original email headers' on.",
        ),
    ),
    Esp.SENDGRID: EspProfile(
        signing_key_label="Signed Event Webhook verification key",
        signing_key_required=False,
        setup_steps=(
            "In SendGrid, Settings: Mail Settings: Event Webhooks: create a webhook with the webhook URL.",
            "Tick Bounced, Dropped, Spam Reports, Unsubscribes and Delivered.",
            "Turn on Signed Event Webhook and paste its verification key here (without the BEGIN/END lines).",
        ),
    ),
    Esp.MAILGUN: EspProfile(
        signing_key_label="HTTP webhook signing key",
        signing_key_required=True,
        setup_steps=(
            "In Mailgun, Sending: Webhooks: add the webhook URL for Permanent Failure, Temporary Failure, "
            "Spam Complaints, Unsubscribes and Delivered Messages.",
            "Paste the 'HTTP webhook signing key' shown on that page here.",
        ),
    ),
    Esp.POSTMARK: EspProfile(
        signing_key_label="",
        signing_key_required=False,
        setup_steps=(
            "In Postmark, your server, the message stream you send through: Webhooks: Add webhook "
            "with the webhook URL.",
            "Tick Bounce, Spam Complaint, Subscription Change and Delivery.",
        ),
    ),
    Esp.BREVO: EspProfile(
        signing_key_label="",
        signing_key_required=False,
        setup_steps=(
            "In Brevo, Transactional: Settings: Webhook: add a new webhook with the webhook URL.",
            "Tick Hard bounced, Soft bounced, Blocked, Complaint, Unsubscribed and Delivered.",
        ),
    ),
    Esp.MAILJET: EspProfile(
        signing_key_label="",
        signing_key_required=False,
        setup_steps=(
            "In Mailjet, Account settings: Event notifications (webhooks): set the webhook URL for "
            "Bounce, Blocked, Spam, Unsub and Sent.",
        ),
    ),
    Esp.SPARKPOST: EspProfile(
        signing_key_label="",
        signing_key_required=False,
        setup_steps=(
            "In SparkPost, Configuration: Webhooks: New webhook with the webhook URL "
            "(Authentication: Basic Auth is already in the URL).",
            "Events: Bounce, Out of Band, Policy Rejection, Spam Complaint, List Unsubscribe, "
            "Link Unsubscribe and Delivery.",
        ),
    ),
    Esp.MANDRILL: EspProfile(
        signing_key_label="Webhook key",
        signing_key_required=True,
        setup_steps=(
            "In Mandrill, Settings: Webhooks: Add a webhook with the webhook URL, exactly as shown.",
            "Tick Message Is Bounced, Message Is Soft-Bounced, Message Is Rejected, Message Is Marked As Spam, "
            "Message Recipient Unsubscribes and Message Is Sent.",
            "Paste the webhook's key here.",
        ),
    ),
    Esp.POSTAL: EspProfile(
        signing_key_label="Webhook public key",
        signing_key_required=True,
        setup_steps=(
            "In Postal, your mail server: Webhooks: Add webhook with the webhook URL, for MessageDeliveryFailed, "
            "MessageBounced and MessageSent.",
            "Paste the server's signing public key here (the text between the BEGIN/END lines).",
        ),
    ),
    Esp.MAILERSEND: EspProfile(
        signing_key_label="Signing secret",
        signing_key_required=True,
        setup_steps=(
            "In MailerSend, Domains: your domain: Webhooks: add an endpoint with the webhook URL.",
            "Tick activity.hard_bounced, activity.soft_bounced, activity.spam_complaint, "
            "activity.unsubscribed and activity.delivered.",
            "Paste the webhook's signing secret here.",
        ),
    ),
}


def profile(esp: str) -> EspProfile:
    return PROFILES[esp]


def signing_key_problem(esp: str, key: str) -> str | None:
    """Why `key` cannot be `esp`'s signing key, or None. A public key (SendGrid's, Postal's) must load."""
    if not esp:
        return "Choose the ESP first: the key is for its webhooks."
    if not PROFILES[esp].signing_key_label:
        return f"{Esp(esp).label} does not sign its webhooks: the URL's basic auth is what protects them."
    if esp in (Esp.SENDGRID, Esp.POSTAL):
        body = "".join(line.strip() for line in key.strip().splitlines() if not line.startswith("-----"))
        try:
            serialization.load_pem_public_key(f"-----BEGIN PUBLIC KEY-----\n{body}\n-----END PUBLIC KEY-----".encode())
        except ValueError:
            return "This is not a public key: paste the key the ESP shows, with or without its BEGIN/END lines."
    return None


def metadata_headers(esp: str, email_id: int) -> bytes:
    """The header lines (CRLF-terminated) that make `esp` echo the Email's id in its webhook events;
    b"" for no ESP, or one (Postal, MailerSend) that echoes no metadata sent over SMTP."""
    value = {"email_id": str(email_id)}
    if esp == Esp.AMAZON_SES:
        lines = [f"X-Metadata: {_json(value)}"]
    elif esp == Esp.SENDGRID:
        lines = [f"X-SMTPAPI: {_json({'unique_args': value})}"]
    elif esp == Esp.MAILGUN:
        lines = [f"X-Mailgun-Variables: {_json(value)}"]
    elif esp == Esp.POSTMARK:
        lines = [f"X-PM-Metadata-email_id: {email_id}"]
    elif esp == Esp.BREVO:
        lines = [f"X-Mailin-custom: {_json(value)}"]
    elif esp == Esp.MAILJET:
        lines = [f"X-MJ-EventPayload: {_json(value)}"]
    elif esp == Esp.SPARKPOST:
        lines = [f"X-MSYS-API: {_json({'metadata': value})}"]
    elif esp == Esp.MANDRILL:
        lines = [f"X-MC-Metadata: {_json(value)}"]
    else:
        return b""
    return "".join(line + "\r\n" for line in lines).encode("ascii")


def _json(value: object) -> str:
    return json.dumps(value, separators=(", ", ": "))
