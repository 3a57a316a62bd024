"""Preview and test sends of a campaign: rendered for a chosen contact, never recorded as Email rows."""

from collections.abc import Iterable
from dataclasses import dataclass

from accounts import smtp
from campaigns import personalize
from campaigns.delivery import message
from campaigns.delivery.smtp_session import SmtpSession, SmtpUtf8Unsupported
from campaigns.models import Campaign, Contact

SAMPLE_NAME = "Sample Recipient"
SAMPLE_EMAIL = "recipient@example.com"


class TestSendError(Exception):
    pass


def _who(contact):
    if contact is None:
        return SAMPLE_NAME, SAMPLE_EMAIL, {}
    return contact.name, contact.email, dict(contact.attributes or {})


def preview(*, campaign: Campaign, contact: Contact | None = None) -> message.Rendered:
    """message.Rendered for the contact (or a sample recipient); raises PersonalizationError."""
    name, email, attributes = _who(contact)
    return message.preview(campaign=campaign, name=name, email=email, attributes=attributes)


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
            (address, message.build_test(campaign=campaign, account=account, to_email=address, name=name,
                                         email=shown_email, attributes=attributes))
            for address in addresses
        ]
    except personalize.PersonalizationError as exc:
        raise TestSendError("; ".join(exc.messages)) from exc
    session = SmtpSession(account)
    try:
        session.open()
    except smtp.OPEN_ERRORS as exc:
        raise TestSendError(f"Could not send through the SMTP server: {smtp.describe_open_failure(exc, account)}") from exc
    result = TestSendResult(sent=[], refused=[])
    try:
        for address, (envelope_from, raw) in raws:
            if not session.connected:
                session.open()  # the server closed the connection after a refusal (421)
            try:
                code, text = session.transact(envelope_from, message.transport_address(address), raw)
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
