"""Preview and test sends of a campaign: rendered for a chosen contact, never recorded as Email rows.

A test send from the admin is asked for (`request_test_send`) and run by a Celery task
(`run_test_send`): the SMTP dialogue may take up to SMTP_TIMEOUT per step, too long for a web request.
"""

import logging
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from django.utils import timezone

from campaigns import personalize
from campaigns.models import Campaign, CampaignTestSend
from campaigns.selectors import previews as preview_selectors
from contacts.models import Contact
from delivery import message
from sending import smtp
from sending.addresses import transport_address
from sending.session import SmtpSession, SmtpUtf8Unsupported

log = logging.getLogger(__name__)

SAMPLE_NAME = "Sample Recipient"
SAMPLE_EMAIL = "recipient@example.com"


class TestSendError(Exception):
    pass


def _who(contact: Contact | None) -> tuple[str, str, dict[str, Any]]:
    if contact is None:
        return SAMPLE_NAME, SAMPLE_EMAIL, {}
    return contact.name, contact.email, dict(contact.attributes or {})


def preview(*, campaign: Campaign, contact: Contact | None = None) -> message.Rendered:
    """message.Rendered for the contact (or a sample recipient); raises PersonalizationError."""
    name, email, attributes = _who(contact)
    return message.preview(campaign=campaign, name=name, email=email, attributes=attributes)


# SpamAssassin's HTML_IMAGE_ONLY_* rules score an HTML part holding an image (the open pixel is one)
# and at most this many characters of HTML, markup included, as an image with few words.
SHORT_HTML_CHARS = 3200
_IMAGE = re.compile(r"<img\b", re.IGNORECASE)


def short_html_with_image(*, campaign: Campaign) -> int | None:
    """The length of the campaign's HTML part as sent (footer, tracked links and open pixel included),
    for a sample recipient, when it holds an image and is short enough to read as an image-only
    message; else None."""
    if campaign.is_text_only:
        return None
    try:
        rendered = preview(campaign=campaign)
    except personalize.PersonalizationError:
        return None  # the form shows the template's error
    tracked = message.as_if_tracked(rendered.content_html, campaign=campaign, keep={message.preview_unsubscribe_url()})
    html = message.with_footer(tracked, rendered.footer_html)
    return len(html) if len(html) <= SHORT_HTML_CHARS and _IMAGE.search(html) else None


def short_html_warning(campaign: Campaign, length: int) -> str:
    pixel = campaign.track_opens
    return (
        f"The HTML of this message is short ({length:,} characters with its footer"
        + (" and the open pixel" if pixel else "")
        + ") and holds an image"
        + (" (the open pixel is one)" if pixel else "")
        + ": spam filters score a short HTML part with an image as an image-only message (SpamAssassin's "
        f"HTML_IMAGE_ONLY rules, up to {SHORT_HTML_CHARS:,} characters). Write more, "
        + ("turn off open tracking, " if pixel else "remove the images, ")
        + "or send it as plain text only."
    )


@dataclass
class TestSendResult:
    sent: list[str]
    refused: list[tuple[str, str]]  # (address, reason)


def send_test(*, campaign: Campaign, addresses: Iterable[str], contact: Contact | None = None) -> TestSendResult:
    """Send the campaign, rendered with the contact's variables, to `addresses` through its SMTP account.

    Subject marked [TEST], nothing tracked, nothing counted: no Email row is written.
    """
    account = campaign.smtp_account
    if account is None:
        raise TestSendError("Choose an SMTP account for this campaign first.")
    name, shown_email, attributes = _who(contact)
    try:
        raws = [
            (
                address,
                message.build_test(
                    campaign=campaign,
                    account=account,
                    to_email=address,
                    name=name,
                    email=shown_email,
                    attributes=attributes,
                ),
            )
            for address in addresses
        ]
    except personalize.PersonalizationError as exc:
        raise TestSendError("; ".join(exc.messages)) from exc
    session = SmtpSession(account)
    try:
        session.open()
    except smtp.OPEN_ERRORS as exc:
        raise TestSendError(
            f"Could not send through the SMTP server: {smtp.describe_open_failure(exc, account)}"
        ) from exc
    result = TestSendResult(sent=[], refused=[])
    try:
        for address, (envelope_from, raw) in raws:
            if not session.connected:
                session.open()  # the server closed the connection after a refusal (421)
            try:
                code, text = session.transact(envelope_from, transport_address(address), raw)
            except SmtpUtf8Unsupported as exc:
                result.refused.append((address, str(exc)))
                continue
            if 200 <= code < 300:
                result.sent.append(address)
            else:
                result.refused.append((address, text))
                if code == 421:
                    session.close()
    except smtp.OPEN_ERRORS as exc:
        raise TestSendError(f"The SMTP connection failed: {smtp.describe_open_failure(exc, account)}") from exc
    finally:
        session.close()
    return result


def request_test_send(
    *, campaign: Campaign, addresses: list[str], contact: Contact | None, enqueue: Callable[[int], object]
) -> CampaignTestSend:
    """Record a test send of the campaign and hand it to `enqueue(test_send_id)`.

    What can be checked without the server is checked now (TestSendError): an SMTP account, the campaign
    renders, no earlier test of it still under way (one at a time per campaign keeps the queue short)."""
    if campaign.smtp_account_id is None:
        raise TestSendError("Choose an SMTP account for this campaign first.")
    now = timezone.now()
    if preview_selectors.awaiting_outcome(test_send=preview_selectors.last_test_send(campaign=campaign), now=now):
        raise TestSendError("A test of this campaign is still being sent: wait for its result.")
    try:
        preview(campaign=campaign, contact=contact)
    except personalize.PersonalizationError as exc:
        raise TestSendError("; ".join(exc.messages)) from exc
    test_send = CampaignTestSend.objects.create(
        campaign=campaign, contact=contact, addresses=list(addresses), requested_at=now
    )
    enqueue(test_send.pk)
    return test_send


def run_test_send(*, test_send_id: int) -> CampaignTestSend | None:
    """Send a requested test and record its outcome (the task's work). None when it is gone or was
    taken already (a redelivered task): a test goes out once."""
    taken = CampaignTestSend.objects.filter(pk=test_send_id, started_at__isnull=True).update(started_at=timezone.now())
    if not taken:
        return None
    test_send = CampaignTestSend.objects.select_related("campaign__smtp_account", "contact").get(pk=test_send_id)
    sent, refused, error = [], [], ""
    try:
        result = send_test(campaign=test_send.campaign, addresses=test_send.addresses, contact=test_send.contact)
        sent, refused = result.sent, [list(pair) for pair in result.refused]
    except TestSendError as exc:
        error = str(exc)
    except Exception as exc:  # noqa: BLE001 - a bug: the page says so instead of waiting for ever
        log.exception("test send %s failed", test_send_id)
        error = f"error while sending: {type(exc).__name__}: {exc}"
    CampaignTestSend.objects.filter(pk=test_send_id).update(
        finished_at=timezone.now(), sent=sent, refused=refused, error=error
    )
    test_send.refresh_from_db()
    return test_send


def record_test_send_not_queued(*, test_send_id: int, error: Exception) -> None:
    """The test could not be handed to a worker: say so instead of "sending" for ever."""
    now = timezone.now()
    CampaignTestSend.objects.filter(pk=test_send_id, started_at__isnull=True).update(
        started_at=now, finished_at=now, error=f"The test could not be queued: {error}"
    )
