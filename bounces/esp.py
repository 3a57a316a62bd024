"""ESP webhooks: a post verified and read into events (`read_post`), then applied (`apply_events`).

Each ESP but Amazon SES is read by django-anymail's tracking webhook view for it, made per request
with the account's secrets (its basic auth, and the ESP's signing key where the ESP signs), and
collecting the events it parses instead of sending anymail's global signal. Amazon SES arrives
through SNS, read by bounces.sns (its signature checked, a subscription confirmed) and here.

An event names its Email by the id our metadata header carried (sending.esp.metadata_headers),
echoed by the ESP; without one, by the recipient: the latest email this account sent to it. Either
way only an email of this account and its owner can match, so a forged or foreign id changes nothing.
"""

import base64
import binascii
import json
import logging
import re
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from anymail.exceptions import AnymailError, AnymailNotSupportedWarning
from anymail.signals import AnymailTrackingEvent, EventType, RejectReason
from anymail.webhooks.base import AnymailCoreWebhookView
from anymail.webhooks.brevo import BrevoTrackingWebhookView
from anymail.webhooks.mailersend import MailerSendTrackingWebhookView
from anymail.webhooks.mailgun import MailgunTrackingWebhookView
from anymail.webhooks.mailjet import MailjetTrackingWebhookView
from anymail.webhooks.mandrill import MandrillCombinedWebhookView
from anymail.webhooks.postal import PostalTrackingWebhookView
from anymail.webhooks.postmark import PostmarkTrackingWebhookView
from anymail.webhooks.sendgrid import SendGridTrackingWebhookView
from anymail.webhooks.sparkpost import SparkPostTrackingWebhookView
from django.conf import settings
from django.core.exceptions import SuspiciousOperation
from django.http import HttpRequest, HttpResponse
from django.utils.crypto import constant_time_compare

from accounts import rate_limits
from bounces import parsing, services, sns
from bounces.selectors import ReportedEmail
from campaigns.models import Email
from sending import esp_webhooks
from sending.esp import Esp, profile
from sending.models import EspWebhook, SmtpAccount

log = logging.getLogger(__name__)

# anymail warns at every SendGrid view it makes; the webhook is read all the same.
warnings.filterwarnings("ignore", category=AnymailNotSupportedWarning)

DESCRIPTION_MAX_CHARS = 1000


class Refused(Exception):
    """The post is not the ESP's, for this account: wrong credentials, a bad signature, a forged SNS message."""


class Unreadable(Exception):
    """Authenticated, but not an event this webhook understands (an inbound webhook pointed here, a broken body)."""


class Kind(StrEnum):
    HARD_BOUNCE = "hard bounce"
    SOFT_BOUNCE = "soft bounce"
    COMPLAINT = "complaint"
    UNSUBSCRIBE = "unsubscribe"
    DELIVERY = "delivery"
    IGNORED = "ignored"  # deferred, opened, clicked, queued...: nothing for us to do


@dataclass(frozen=True)
class EspEvent:
    kind: Kind
    recipient: str  # lower-cased; "" when the event names none
    email_id: int | None  # from our metadata header, echoed by the ESP
    description: str = ""  # the ESP's or the receiving server's words


# --- applying events --------------------------------------------------------------------------

# Which report of the bounce loop each event is; deliveries and the rest are only counted.
_REPORT_KINDS = {
    Kind.HARD_BOUNCE: parsing.Kind.HARD,
    Kind.SOFT_BOUNCE: parsing.Kind.SOFT,
    Kind.COMPLAINT: parsing.Kind.COMPLAINT,
    Kind.UNSUBSCRIBE: parsing.Kind.UNSUBSCRIBE,
}
_ENHANCED_STATUS = re.compile(r"(?<![\d.])([245]\.\d{1,3}\.\d{1,3})(?![\d.])")


def apply_events(*, webhook: EspWebhook, events: list[EspEvent], now: datetime) -> list[services.Outcome]:
    """Do what each event reports to the email it names, within the webhook's account; count the post.
    The bounce loop's conditional writes make an event applied twice change nothing."""
    account = webhook.account
    outcomes = []
    for event in events:
        report_kind = _REPORT_KINDS.get(event.kind)
        if report_kind is None:
            continue
        email = _reported_email(account, event)
        if email is None:
            log.info("ESP webhook of account %s: a %s names no email of the account", account.pk, event.kind)
            continue
        report = parsing.Report(
            kind=report_kind,
            recipients=(event.recipient,) if event.recipient else (),
            email_id=email.id,
            status=_status_in(event.description),
            text=event.description or str(event.kind),
        )
        outcomes.append(services.apply_report(email=email, report=report, source=_source(account), now=now))
    esp_webhooks.note_events(webhook_id=webhook.pk, count=len(events), now=now)
    return outcomes


def _reported_email(account: SmtpAccount, event: EspEvent) -> ReportedEmail | None:
    """The email the event names: by the id it echoes, else the latest this account sent to its
    recipient; only ever one of this account's campaigns and of its owner."""
    rows = Email.objects.filter(campaign__smtp_account_id=account.pk, campaign__owner_id=account.owner_id)
    if event.email_id is not None:
        rows = rows.filter(pk=event.email_id)
    elif event.recipient:
        rows = rows.filter(to_email=event.recipient, status=Email.Status.SENT).order_by("-sent_at", "-pk")
    else:
        return None
    row = rows.values_list("id", "campaign_id", "contact_id", "unsubscribed_at").first()
    return ReportedEmail(*row) if row else None


def _status_in(description: str) -> str:
    match = _ENHANCED_STATUS.search(description)
    return match.group(1) if match else ""


def _source(account: SmtpAccount) -> str:
    return f"{account.get_esp_display()} webhook"


# --- the endpoint's guards ---------------------------------------------------------------------


def webhook_for(*, token: str) -> EspWebhook | None:
    """The webhook the URL's token names, with its account; None when unknown or its account names no ESP."""
    return EspWebhook.objects.select_related("account").exclude(account__esp="").filter(token=token).first()


def _failures_key(client_key: str) -> str:
    return f"esp-webhook:failures:{client_key}"


def client_failing(*, client_key: str) -> bool:
    """Whether the client has failed ESP_WEBHOOK_FAILURES_PER_IP times in the window: refused until it ends."""
    return rate_limits.limit_reached(_failures_key(client_key), limit=settings.ESP_WEBHOOK_FAILURES_PER_IP)


def count_failure(*, client_key: str) -> None:
    rate_limits.over_limit(
        _failures_key(client_key),
        limit=settings.ESP_WEBHOOK_FAILURES_PER_IP,
        window=settings.ESP_WEBHOOK_FAILURE_WINDOW,
    )


# --- reading a post ---------------------------------------------------------------------------


def read_post(*, request: HttpRequest, webhook: EspWebhook) -> list[EspEvent]:
    """The events of one post to `webhook`'s URL. Raises Refused (not the ESP's), Unreadable, or
    sns.SnsUnavailable (SNS's host could not be reached to check the signature: SNS retries)."""
    _check_basic_auth(request, webhook)
    esp = webhook.account.esp
    if esp == Esp.AMAZON_SES:
        return _read_sns(request)
    return _read_with_anymail(request, webhook, esp)


def _check_basic_auth(request: HttpRequest, webhook: EspWebhook) -> None:
    expected = f"{esp_webhooks.ESP_WEBHOOK_USER}:{webhook.get_secret()}"
    given = _basic_auth(request)
    if given is None or not constant_time_compare(given, expected):
        raise Refused("missing or wrong basic auth credentials")


def _basic_auth(request: HttpRequest) -> str | None:
    method, _, value = request.META.get("HTTP_AUTHORIZATION", "").partition(" ")
    if method.lower() != "basic":
        return None
    try:
        return base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None


# --- the ESPs anymail reads -------------------------------------------------------------------


class _Collecting(AnymailCoreWebhookView):  # type: ignore[misc]  # anymail ships no type hints
    """An anymail view whose post() keeps the events it parsed, for our service, instead of sending
    anymail's global tracking signal."""

    events: list[AnymailTrackingEvent]

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        self.run_validators(request)
        self.events = list(self.parse_events(request))
        return HttpResponse()


def _collecting(view: type[AnymailCoreWebhookView]) -> type[_Collecting]:
    return type(f"Collecting{view.__name__}", (_Collecting, view), {})


# esp -> (its view, the name of the constructor argument its signing key goes in, or "").
_ANYMAIL_VIEWS: dict[str, tuple[type[_Collecting], str]] = {
    Esp.SENDGRID: (_collecting(SendGridTrackingWebhookView), "tracking_webhook_verification_key"),
    Esp.MAILGUN: (_collecting(MailgunTrackingWebhookView), "webhook_signing_key"),
    Esp.POSTMARK: (_collecting(PostmarkTrackingWebhookView), ""),
    Esp.BREVO: (_collecting(BrevoTrackingWebhookView), ""),
    Esp.MAILJET: (_collecting(MailjetTrackingWebhookView), ""),
    Esp.SPARKPOST: (_collecting(SparkPostTrackingWebhookView), ""),
    Esp.MANDRILL: (_collecting(MandrillCombinedWebhookView), "webhook_key"),
    Esp.POSTAL: (_collecting(PostalTrackingWebhookView), "webhook_key"),
    Esp.MAILERSEND: (_collecting(MailerSendTrackingWebhookView), "signing_secret"),
}


def _read_with_anymail(request: HttpRequest, webhook: EspWebhook, esp: str) -> list[EspEvent]:
    view = _view(webhook, esp)
    view.setup(request)
    try:
        view.dispatch(request)
    except SuspiciousOperation as exc:  # anymail's AnymailWebhookValidationFailure
        raise Refused(str(exc)) from exc
    except (AnymailError, KeyError, TypeError, ValueError, AttributeError) as exc:
        raise Unreadable(f"not a {esp} tracking event: {exc}") from exc
    return [_event(esp, event) for event in view.events]


def _view(webhook: EspWebhook, esp: str) -> _Collecting:
    view_class, key_argument = _ANYMAIL_VIEWS[esp]
    kwargs: dict[str, Any] = {
        "webhook_secret": [f"{esp_webhooks.ESP_WEBHOOK_USER}:{webhook.get_secret()}"],
    }
    signing_key = webhook.get_signing_key()
    if key_argument and (signing_key or profile(esp).signing_key_required):
        if not signing_key:
            raise Refused(f"no {esp} signing key is stored for this account: every post is refused until it is")
        kwargs[key_argument] = signing_key
    if esp == Esp.MANDRILL:
        # Mandrill signs the URL it posts to, exactly as it was entered: the one the account page shows.
        kwargs["webhook_url"] = esp_webhooks.webhook_url(webhook)
    try:
        return view_class(**kwargs)
    except (AnymailError, ValueError, TypeError) as exc:
        raise Refused(f"the stored {esp} signing key cannot be used: {exc}") from exc


# Soft bounces anymail reports as bounced: the ESP's own word for them, in its raw event.
_SOFT_BOUNCE_TEST: dict[str, Callable[[Mapping[str, Any]], bool]] = {
    Esp.SENDGRID: lambda raw: raw.get("type") == "blocked",
    Esp.POSTMARK: lambda raw: raw.get("Type") == "SoftBounce",
    Esp.BREVO: lambda raw: raw.get("event") == "soft_bounce",
    Esp.MAILJET: lambda raw: not raw.get("hard_bounce", True),
    # SparkPost's bounce classes: 10 invalid recipient and 30 no such mailbox are the address's fault.
    Esp.SPARKPOST: lambda raw: _sparkpost_event(raw).get("bounce_class") not in ("10", "30"),
    Esp.MANDRILL: lambda raw: raw.get("event") == "soft_bounce",
    Esp.MAILERSEND: lambda raw: (raw.get("data") or {}).get("type") == "soft_bounced",
}


def _sparkpost_event(raw: Mapping[str, Any]) -> Mapping[str, Any]:
    events: list[Mapping[str, Any]] = list((raw.get("msys") or {}).values())
    return events[0] if events else {}


def _event(esp: str, event: AnymailTrackingEvent) -> EspEvent:
    return EspEvent(
        kind=_kind(esp, event),
        recipient=(event.recipient or "").strip().lower(),
        email_id=_email_id(event.metadata),
        description=" ".join(str(part) for part in (event.description, event.mta_response) if part)[
            :DESCRIPTION_MAX_CHARS
        ],
    )


def _kind(esp: str, event: AnymailTrackingEvent) -> Kind:
    event_type, reason = event.event_type, event.reject_reason
    if event_type == EventType.COMPLAINED or (event_type == EventType.REJECTED and reason == RejectReason.SPAM):
        return Kind.COMPLAINT
    if event_type == EventType.UNSUBSCRIBED or reason == RejectReason.UNSUBSCRIBED:
        return Kind.UNSUBSCRIBE
    if event_type == EventType.BOUNCED:
        soft = _SOFT_BOUNCE_TEST.get(esp)
        return Kind.SOFT_BOUNCE if soft is not None and soft(event.esp_event or {}) else Kind.HARD_BOUNCE
    if event_type == EventType.REJECTED or (esp == Esp.POSTAL and event_type == EventType.FAILED):
        return Kind.HARD_BOUNCE  # Postal's HardFail: the receiving server refused it for good
    if event_type == EventType.DELIVERED or (esp == Esp.MANDRILL and event_type == EventType.SENT):
        return Kind.DELIVERY  # Mandrill's "send" is its last word on a delivered message
    return Kind.IGNORED


def _email_id(metadata: object) -> int | None:
    value = metadata.get("email_id") if isinstance(metadata, Mapping) else None
    try:
        email_id = int(str(value))
    except ValueError:
        return None
    return email_id if email_id > 0 else None


# --- Amazon SES, through SNS ------------------------------------------------------------------


def _read_sns(request: HttpRequest) -> list[EspEvent]:
    try:
        message = json.loads(request.body)
    except ValueError as exc:
        raise Refused("the body is not an SNS message (JSON)") from exc
    if not isinstance(message, dict):
        raise Refused("the body is not an SNS message")
    try:
        sns.verify(message)
        if message["Type"] == sns.SUBSCRIPTION_CONFIRMATION:
            sns.confirm_subscription(message)
            return []
    except sns.SnsRefused as exc:
        raise Refused(f"SNS: {exc}") from exc
    if message["Type"] != sns.NOTIFICATION:
        return []
    try:
        notification = json.loads(message["Message"])
    except ValueError as exc:
        raise Unreadable("the SNS message holds no SES notification") from exc
    if not isinstance(notification, dict):
        raise Unreadable("the SNS message holds no SES notification")
    return ses_events(notification)


def ses_events(notification: Mapping[str, Any]) -> list[EspEvent]:
    """The events of one SES notification (a feedback notification's notificationType, or an event
    publishing record's eventType): one per recipient it names."""
    kind_name = notification.get("notificationType") or notification.get("eventType")
    mail = notification.get("mail") or {}
    email_id = _email_id(_ses_metadata(mail))
    if kind_name == "Bounce":
        bounce = notification.get("bounce") or {}
        kind = Kind.HARD_BOUNCE if bounce.get("bounceType") == "Permanent" else Kind.SOFT_BOUNCE
        return [
            EspEvent(kind=kind, recipient=_ses_address(r), email_id=email_id, description=_ses_diagnostic(r, bounce))
            for r in bounce.get("bouncedRecipients") or []
        ]
    if kind_name == "Complaint":
        complaint = notification.get("complaint") or {}
        feedback = complaint.get("complaintFeedbackType") or ""
        return [
            EspEvent(kind=Kind.COMPLAINT, recipient=_ses_address(r), email_id=email_id, description=feedback)
            for r in complaint.get("complainedRecipients") or []
        ]
    if kind_name == "Delivery":
        delivery = notification.get("delivery") or {}
        return [
            EspEvent(kind=Kind.DELIVERY, recipient=str(r).lower(), email_id=email_id)
            for r in delivery.get("recipients") or []
        ]
    return [EspEvent(kind=Kind.IGNORED, recipient="", email_id=email_id)]


def _ses_metadata(mail: Mapping[str, Any]) -> object:
    """Our X-Metadata header's JSON, from the original headers SES includes when asked to."""
    for header in mail.get("headers") or []:
        if isinstance(header, Mapping) and str(header.get("name", "")).lower() == "x-metadata":
            try:
                return json.loads(str(header.get("value", "")))
            except ValueError:
                return None
    return None


def _ses_address(recipient: object) -> str:
    address = recipient.get("emailAddress", "") if isinstance(recipient, Mapping) else ""
    return str(address).strip().lower()


def _ses_diagnostic(recipient: object, bounce: Mapping[str, Any]) -> str:
    words = recipient.get("diagnosticCode", "") if isinstance(recipient, Mapping) else ""
    kind = " ".join(str(bounce.get(name, "")) for name in ("bounceType", "bounceSubType")).strip()
    return f"{kind}: {words}"[:DESCRIPTION_MAX_CHARS] if words else kind
