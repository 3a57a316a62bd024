"""Headers of the marketer's own, written as "Name: value" lines on an SMTP account or a campaign.

Checked when saved (validate_custom_headers, the fields' validator); at send time `custom_headers`
keeps only lines that pass the same checks, so nothing the check refuses can reach a message
however the text was stored. The product's own headers cannot be set here: those that make the
message (From, To, Subject, Date, Message-ID, MIME-Version, Content-*), those that decide who
receives it (Cc, Bcc, Sender...), those it sets for providers (List-*, Feedback-ID) and those
written by the servers on the way (Return-Path, Received, DKIM-Signature, ARC-*...).
"""

import functools
import re

from django.core.exceptions import ValidationError

RESERVED_NAMES = frozenset(
    name.lower()
    for name in (
        "From",
        "Sender",
        "Reply-To",
        "To",
        "Cc",
        "Bcc",
        "Subject",
        "Date",
        "Message-ID",
        "In-Reply-To",
        "References",
        "MIME-Version",
        "Feedback-ID",
        "Return-Path",
        "Received",
        "Delivered-To",
        "DKIM-Signature",
        "DomainKey-Signature",
        "Authentication-Results",
        "Received-SPF",
    )
)
RESERVED_PREFIXES = ("content-", "list-", "resent-", "arc-", "x-spam-")
MAX_HEADERS = 20
# RFC 5322 limits a line to 998 characters; a value this long still leaves room for its name.
MAX_VALUE_CHARS = 900

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]*")
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


def validate_custom_headers(text: str) -> None:
    """Raise ValidationError with one message per line refused."""
    _, errors = _parse(text or "")
    if errors:
        raise ValidationError(list(errors), code="custom_header")


def custom_headers(text: str) -> tuple[tuple[str, str], ...]:
    """The valid (name, value) pairs of `text`, in order; refused lines are left out."""
    return _parse(text or "")[0]


def merged(*, account_headers: str, campaign_headers: str) -> tuple[tuple[str, str], ...]:
    """The account's headers, then the campaign's: a campaign header replaces the account's of the same name."""
    own = custom_headers(campaign_headers)
    overridden = {name.lower() for name, _ in own}
    return (
        tuple((name, value) for name, value in custom_headers(account_headers) if name.lower() not in overridden) + own
    )


def is_reserved(name: str) -> bool:
    lowered = name.lower()
    return lowered in RESERVED_NAMES or lowered.startswith(RESERVED_PREFIXES)


@functools.lru_cache(maxsize=256)
def _parse(text: str) -> tuple[tuple[tuple[str, str], ...], tuple[str, ...]]:
    headers: list[tuple[str, str]] = []
    errors: list[str] = []
    seen: set[str] = set()
    for number, line in enumerate(text.replace("\r\n", "\n").split("\n"), start=1):
        if not line.strip():
            continue
        error, header = _check_line(line, seen)
        if error:
            errors.append(f"Line {number}: {error}")
        elif header:
            headers.append(header)
            seen.add(header[0].lower())
    if len(headers) > MAX_HEADERS:
        errors.append(f"At most {MAX_HEADERS} headers; this has {len(headers)}.")
        headers = headers[:MAX_HEADERS]
    return tuple(headers), tuple(errors)


def _check_line(line: str, seen: set[str]) -> tuple[str, tuple[str, str] | None]:
    """(why the line is refused, "" if it is not; the header it gives)."""
    if line[0] in " \t":
        return "it starts with a space: write each header on one line, as Name: value.", None
    if _CONTROL.search(line):
        return "a line break or control character is not allowed in a header.", None
    name, colon, value = line.partition(":")
    name, value = name.strip(), value.strip()
    if not colon or not name:
        return f"“{_shown(line)}” is not a header: write it as Name: value (like X-Campaign-Code: spring-26).", None
    if not _NAME.fullmatch(name):
        return f"“{_shown(name)}” is not a header name: use only the letters A-Z, digits and hyphens.", None
    if is_reserved(name):
        return f"{name} is set by the product (or by the mail servers on the way); it cannot be set here.", None
    if name.lower() in seen:
        return f"{name} is written twice; keep one.", None
    if not value:
        return f"{name} has no value.", None
    if len(value) > MAX_VALUE_CHARS:
        return f"the value of {name} is longer than {MAX_VALUE_CHARS} characters.", None
    return "", (name, value)


def _shown(text: str) -> str:
    return text if len(text) <= 60 else text[:57] + "…"
