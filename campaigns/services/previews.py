"""Preview and test sends of a campaign: rendered for a chosen contact, never recorded as Email rows."""

import smtplib
import ssl
from collections.abc import Iterable
from dataclasses import dataclass

from accounts import crypto, smtp
from campaigns import personalize
from campaigns.delivery import message
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
    try:
        conn, _reply = smtp.open_connection(account)
    except smtp.SmtpDestinationError as exc:
        raise TestSendError(str(exc)) from exc
    except crypto.DecryptionError as exc:
        raise TestSendError(f"The SMTP password cannot be decrypted: {exc}") from exc
    except smtplib.SMTPResponseException as exc:
        raise TestSendError(f"The SMTP server answered {exc.smtp_code} {_text(exc.smtp_error)}") from exc
    except (OSError, smtplib.SMTPException, ssl.SSLError) as exc:
        raise TestSendError(f"Could not connect to the SMTP server: {exc}") from exc
    result = TestSendResult(sent=[], refused=[])
    try:
        for address, (envelope_from, raw) in raws:
            try:
                refused = conn.sendmail(envelope_from, [address], raw)
            except smtplib.SMTPRecipientsRefused as exc:
                code, text = exc.recipients.get(address, (None, b""))
                result.refused.append((address, f"{code} {_text(text)}".strip()))
                continue
            except smtplib.SMTPResponseException as exc:
                result.refused.append((address, f"{exc.smtp_code} {_text(exc.smtp_error)}"))
                continue
            if refused:
                result.refused.append((address, str(refused)))
            else:
                result.sent.append(address)
    finally:
        try:
            conn.quit()
        except (smtplib.SMTPException, OSError):
            conn.close()
    return result


def _text(value):
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
