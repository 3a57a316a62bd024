"""What a message in a bounce mailbox reports: a bounce, a complaint, an unsubscribe request, or nothing.

`parse(raw)` reads, in this order:
- an ARF feedback report (RFC 5965: multipart/report; report-type=feedback-report): a complaint
  when its Feedback-Type is abuse, fraud, virus or other;
- a DSN (RFC 3464: a message/delivery-status part): per recipient, Action failed is a hard bounce
  for a 5.x.x Status (or none) and a soft one for 4.x.x; Action delayed is a delay, not a bounce;
- a mail to the List-Unsubscribe mailto: its subject carries the signed unsubscribe token
  (delivery.message.unsubscribe_mailto);
- anything else through flufl.bounce's detectors, which know the formats of many MTAs that write
  no DSN: its permanent failures are bounces (soft when the text gives a 4.x.x code), its
  temporary ones delays.

Which of our emails a report is about comes from signed values only: the VERP address the report
was mailed to (To, Delivered-To, X-Original-To and kin), ARF's Original-Mail-From, or, in the
original message when the report includes it, its Return-Path or its List-Unsubscribe token. The
original Message-ID is returned too, for the caller to match against the owner's emails. Parsing
reads nothing from the database and never raises on a malformed message.
"""

import email
import logging
import re
from dataclasses import dataclass
from email.header import decode_header, make_header
from email.message import Message
from email.parser import HeaderParser
from email.utils import getaddresses
from enum import StrEnum

from flufl.bounce import all_failures

from sending import verp
from tracking import tokens

log = logging.getLogger(__name__)

TEXT_MAX_CHARS = 1000
# Where a report mailed to a VERP address keeps that address.
RECIPIENT_HEADERS = ("Delivered-To", "X-Original-To", "Envelope-To", "X-Envelope-To", "X-Rcpt-To", "To")
COMPLAINT_FEEDBACK_TYPES = frozenset({"abuse", "fraud", "virus", "other"})
_ENHANCED_STATUS = re.compile(r"(?<![\d.])([245]\.\d{1,3}\.\d{1,3})(?![\d.])")
_FAILURE_STATUS = re.compile(r"(?<![\d.])([45]\.\d{1,3}\.\d{1,3})(?![\d.])")
_REPLY_CODE = re.compile(r"(?<![\d.])[45]\d\d(?![\d.])")
_UNSUBSCRIBE_SUBJECT = re.compile(r"\bunsubscribe\s+([A-Za-z0-9._:-]+)", re.IGNORECASE)
_UNSUBSCRIBE_URL_TOKEN = re.compile(r"/t/u/([A-Za-z0-9._:-]+)/")
_UNSUBSCRIBE_MAILTO_TOKEN = re.compile(r"subject=unsubscribe(?:%20|\+|\s)+([A-Za-z0-9._:-]+)", re.IGNORECASE)
_QUOTED_HEADER = re.compile(r"^\s*(Return-Path|Message-ID)\s*:\s*(<[^>\s]+>)", re.IGNORECASE | re.MULTILINE)
_WHITESPACE = re.compile(r"\s+")


class Kind(StrEnum):
    HARD = "hard"
    SOFT = "soft"
    DELAYED = "delayed"  # still being tried: not a bounce
    COMPLAINT = "complaint"
    UNSUBSCRIBE = "unsubscribe"
    NOT_A_REPORT = "none"


BOUNCE_KINDS = (Kind.HARD, Kind.SOFT)


@dataclass(frozen=True)
class Report:
    kind: Kind
    recipients: tuple[str, ...] = ()  # the original recipients it names, lower-cased
    email_id: int | None = None  # from a signed value: a VERP address or an unsubscribe token
    message_id: str = ""  # the original message's Message-ID, <...>, when included
    status: str = ""  # a DSN's Status (5.1.1), an ARF Feedback-Type (abuse)
    text: str = ""  # the Diagnostic-Code, or the report's own words


@dataclass(frozen=True)
class _Failure:
    recipient: str
    kind: Kind
    status: str
    text: str


def parse(raw: bytes) -> Report:
    try:
        message = email.message_from_bytes(raw)
        return _parse(message)
    except Exception:  # noqa: BLE001 - a message no reader understands is not a report, never a crash
        log.warning("a message in the bounce mailbox could not be read", exc_info=True)
        return Report(kind=Kind.NOT_A_REPORT)


def _parse(message: Message) -> Report:
    original = _original_headers(message)
    email_id, message_id = _email_id(message, original), _message_id(message, original)
    feedback = _part_fields(message, "message/feedback-report")
    if feedback is not None:
        return _complaint(feedback, original, email_id=email_id, message_id=message_id)
    failures = _dsn_failures(message)
    if failures is None:
        unsubscribe_id = _unsubscribe_request(message)
        if unsubscribe_id is not None:
            return Report(kind=Kind.UNSUBSCRIBE, email_id=unsubscribe_id)
        failures = _heuristic_failures(message)
    return _worst(failures, email_id=email_id, message_id=message_id)


# --- complaints -------------------------------------------------------------------------------


def _complaint(fields: Message, original: Message | None, *, email_id: int | None, message_id: str) -> Report:
    feedback_type = _one_line(fields.get("Feedback-Type", "")).lower()
    if feedback_type not in COMPLAINT_FEEDBACK_TYPES:
        return Report(kind=Kind.NOT_A_REPORT, email_id=email_id, message_id=message_id, status=feedback_type)
    recipients = [address for value in fields.get_all("Original-Rcpt-To", []) for address in _addresses(value)]
    if not recipients and original is not None:
        recipients = _addresses(original.get("To", ""))
    email_id = email_id or verp.parse(_first_address(fields.get("Original-Mail-From", "")))
    agent = _one_line(fields.get("User-Agent", ""))
    return Report(
        kind=Kind.COMPLAINT,
        recipients=tuple(dict.fromkeys(recipients)),
        email_id=email_id,
        message_id=message_id,
        status=feedback_type,
        text=f"Feedback-Type: {feedback_type}" + (f" ({agent})" if agent else ""),
    )


# --- bounces ----------------------------------------------------------------------------------


def _dsn_failures(message: Message) -> list[_Failure] | None:
    """Each recipient's failure or delay in the message/delivery-status part; None without one."""
    blocks = _delivery_status_blocks(message)
    if blocks is None:
        return None
    failures = []
    for block in blocks:
        recipient = _dsn_recipient(block)
        if not recipient:
            continue
        action = _one_line(block.get("Action", "")).lower()
        raw_status = _one_line(block.get("Status", ""))
        match = _ENHANCED_STATUS.search(raw_status)
        text = _diagnostic(block) or ("" if match else raw_status[:TEXT_MAX_CHARS])
        if match is None:  # a Status without its code: the diagnostic's, if it gives one
            match = _FAILURE_STATUS.search(text)
        status = match.group(1) if match else ""
        if action.startswith("delayed"):
            failures.append(_Failure(recipient, Kind.DELAYED, status, text))
        elif action.startswith(("fail", "error")):  # (opensmtpd writes "error")
            kind = Kind.SOFT if status.startswith("4") else Kind.HARD
            failures.append(_Failure(recipient, kind, status, text))
    return failures


def _delivery_status_blocks(message: Message) -> list[Message] | None:
    for part in message.walk():
        if part.get_content_type() != "message/delivery-status":
            continue
        payload = part.get_payload()
        if isinstance(payload, list):
            return [block for block in payload if isinstance(block, Message)]
        text = _decoded(part)
        return [HeaderParser().parsestr(block.strip() + "\n") for block in re.split(r"\n\s*\n", text) if block.strip()]
    return None


def _dsn_recipient(block: Message) -> str:
    for name in ("Original-Recipient", "Final-Recipient", "X-Actual-Recipient"):
        value = _one_line(block.get(name, ""))
        address_type, separator, address = value.partition(";")
        if not separator:  # some MTAs leave the type out
            address_type, address = "rfc822", value
        if "@" in address and address_type.strip().lower() in ("rfc822", "utf-8"):
            return address.strip().strip("<>").lower()
    return ""


def _diagnostic(block: Message) -> str:
    value = _one_line(block.get("Diagnostic-Code", ""))
    kind, separator, text = value.partition(";")
    return (text.strip() if separator and " " not in kind.strip() else value)[:TEXT_MAX_CHARS]


def _heuristic_failures(message: Message) -> list[_Failure]:
    temporary, permanent = all_failures(message)
    text = _report_text(message)
    status, line = _status_in(text)
    kind = Kind.SOFT if status.startswith("4") else Kind.HARD
    failures = [_Failure(_decoded_address(a), kind, status, line) for a in sorted(permanent)]
    failures += [_Failure(_decoded_address(a), Kind.DELAYED, "", "") for a in sorted(temporary - permanent)]
    return failures


def _status_in(text: str) -> tuple[str, str]:
    """The first enhanced status code of a report's text and its line; else "" and the first line with
    an SMTP reply code."""
    for pattern in (_FAILURE_STATUS, _REPLY_CODE):
        match = pattern.search(text)
        if match:
            start = text.rfind("\n", 0, match.start()) + 1
            end = text.find("\n", match.end())
            line = _one_line(text[start : end if end >= 0 else None])[:TEXT_MAX_CHARS]
            return (match.group(1) if pattern is _FAILURE_STATUS else ""), line
    return "", ""


def _worst(failures: list[_Failure], *, email_id: int | None, message_id: str) -> Report:
    """The report's kind is its worst recipient's: hard, then soft, then a delay."""
    for kind in (Kind.HARD, Kind.SOFT, Kind.DELAYED):
        of_kind = [f for f in failures if f.kind == kind]
        if of_kind:
            return Report(
                kind=kind,
                recipients=tuple(dict.fromkeys(f.recipient for f in of_kind if f.recipient)),
                email_id=email_id,
                message_id=message_id,
                status=of_kind[0].status,
                text=of_kind[0].text,
            )
    return Report(kind=Kind.NOT_A_REPORT, email_id=email_id, message_id=message_id)


# --- unsubscribe requests ---------------------------------------------------------------------


def _unsubscribe_request(message: Message) -> int | None:
    """The Email id of a mail to the List-Unsubscribe mailto, from the signed token in its subject."""
    match = _UNSUBSCRIBE_SUBJECT.search(_decoded_header(message.get("Subject", "")))
    return tokens.read_unsubscribe(match.group(1)) if match else None


# --- which email ------------------------------------------------------------------------------


def _email_id(message: Message, original: Message | None) -> int | None:
    candidates = [address for name in RECIPIENT_HEADERS for address in _addresses_of(message, name)]
    if original is not None:
        candidates += _addresses_of(original, "Return-Path")
    candidates += [
        value for name, value in _QUOTED_HEADER.findall(_report_text(message)) if name.lower() != "message-id"
    ]
    for candidate in candidates:
        email_id = verp.parse(candidate)
        if email_id is not None:
            return email_id
    if original is not None:
        return _email_id_of_unsubscribe_link(original.get("List-Unsubscribe", ""))
    return None


def _email_id_of_unsubscribe_link(value: str) -> int | None:
    value = _one_line(value)
    for pattern in (_UNSUBSCRIBE_URL_TOKEN, _UNSUBSCRIBE_MAILTO_TOKEN):
        for token in pattern.findall(value):
            email_id = tokens.read_unsubscribe(token)
            if email_id is not None:
                return email_id
    return None


def _message_id(message: Message, original: Message | None) -> str:
    if original is not None and original.get("Message-ID"):
        return _one_line(original["Message-ID"])
    quoted = [value for name, value in _QUOTED_HEADER.findall(_report_text(message)) if name.lower() == "message-id"]
    return quoted[0] if quoted else ""


def _original_headers(message: Message) -> Message | None:
    """The headers of the original message a report includes (message/rfc822 or text/rfc822-headers)."""
    for part in message.walk():
        content_type = part.get_content_type()
        if content_type == "message/rfc822":
            payload = part.get_payload()
            if isinstance(payload, list) and payload and isinstance(payload[0], Message):
                return payload[0]
        elif content_type == "text/rfc822-headers":
            return HeaderParser().parsestr(_decoded(part))
    return None


# --- reading the message ----------------------------------------------------------------------


def _part_fields(message: Message, content_type: str) -> Message | None:
    """The fields of a machine-readable part (message/feedback-report) as headers, or None."""
    for part in message.walk():
        if part.get_content_type() != content_type:
            continue
        payload = part.get_payload()
        if isinstance(payload, list) and payload and isinstance(payload[0], Message):
            return payload[0]
        return HeaderParser().parsestr(_decoded(part))
    return None


def _report_text(message: Message) -> str:
    """The report's own human-readable text: its text/plain parts, not the original it quotes."""
    texts = []
    stack = [message]
    while stack:
        part = stack.pop(0)
        if part.is_multipart():
            if part.get_content_type() != "message/rfc822":
                payload = part.get_payload()
                stack[:0] = [p for p in payload if isinstance(p, Message)]
        elif part.get_content_maintype() == "text" and part.get_content_type() != "text/rfc822-headers":
            texts.append(_decoded(part))
    return "\n".join(texts)


def _decoded(part: Message) -> str:
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes):
        value = part.get_payload()
        return value if isinstance(value, str) else ""
    charset = part.get_content_charset() or "utf-8"
    try:
        return payload.decode(charset, errors="replace")
    except LookupError:  # an unknown charset name
        return payload.decode("utf-8", errors="replace")


def _decoded_header(value: str) -> str:
    try:
        return _one_line(str(make_header(decode_header(value))))
    except (LookupError, UnicodeError, ValueError):
        return _one_line(value)


def _decoded_address(value: bytes) -> str:
    return value.decode("ascii", errors="replace").strip().strip("<>").lower()


def _addresses_of(message: Message, name: str) -> list[str]:
    return [address for value in message.get_all(name, []) for address in _addresses(str(value))]


def _addresses(value: str) -> list[str]:
    value = _one_line(value)
    if ";" in value:  # "rfc822; a@b" (ARF's Original-Rcpt-To may carry the type)
        value = value.partition(";")[2]
    return [address.lower() for _, address in getaddresses([value]) if "@" in address]


def _first_address(value: str) -> str:
    found = _addresses(value)
    return found[0] if found else ""


def _one_line(value: object) -> str:
    return _WHITESPACE.sub(" ", str(value or "")).strip()
