"""VERP: each campaign message's envelope sender names its Email row, so a bounce says which one failed.

With an account's `bounce_address` set (`bounces@mail.example.com`), the envelope sender (MAIL FROM,
which the receiver keeps as Return-Path and mails its delivery reports to) is
`bounces+<id>-<mac>@mail.example.com`: the Email row's id in base 36 and a MAC of it. The MAC is an
HMAC-SHA256 keyed from SECRET_KEY (SECRET_KEY_FALLBACKS verify too, so a key rotation keeps the
reports of mail already sent), cut to 80 bits and written in base 32. Everything is lower case
digits and letters, since receivers may change the case of a local part, and the token stays under
32 characters, within the 64 of a local part with any base of up to MAX_BASE_LOCAL_PART characters.

Nothing but campaign messages carries a VERP sender: test sends and confirmation mails keep the From.
"""

import base64
import hmac
from typing import TYPE_CHECKING

from django.conf import settings
from django.core.exceptions import ValidationError
from django.utils.crypto import salted_hmac

from sending.addresses import transport_address

if TYPE_CHECKING:
    from sending.models import SmtpAccount  # whose field validator lives here

SEPARATOR = "+"
LOCAL_PART_LIMIT = 64
MAX_BASE_LOCAL_PART = 32  # "+" and the longest token (13 digits, "-", 16 letters) take 31 of the 64
_SALT = "sending.verp"
_MAC_BYTES = 10
_DIGITS = "0123456789abcdefghijklmnopqrstuvwxyz"


def envelope_sender(*, account: "SmtpAccount", email_id: int) -> str:
    """MAIL FROM of a campaign message: the VERP address when the account has a bounce address, else From."""
    if not account.bounce_address:
        return transport_address(account.from_email)
    return transport_address(address(bounce_address=account.bounce_address, email_id=email_id))


def address(*, bounce_address: str, email_id: int) -> str:
    local, _, domain = bounce_address.strip().rpartition("@")
    return f"{local.lower()}{SEPARATOR}{token(email_id)}@{domain.lower()}"


def token(email_id: int) -> str:
    payload = _base36(email_id)
    return f"{payload}-{_mac(payload, settings.SECRET_KEY)}"


def parse(value: str | None) -> int | None:
    """The Email id a VERP address (or only its token) carries, or None: not one, or a bad MAC.

    Accepts `<...>` around it and any case."""
    if not value:
        return None
    value = value.strip().strip("<>").strip().lower()
    local = value.rpartition("@")[0] if "@" in value else value
    candidate = local.rpartition(SEPARATOR)[2]
    payload, _, mac = candidate.partition("-")
    if not payload or not mac or len(candidate) > 40 or not all(ch in _DIGITS for ch in payload):
        return None
    keys = [settings.SECRET_KEY, *settings.SECRET_KEY_FALLBACKS]
    if not any(hmac.compare_digest(mac, _mac(payload, key)) for key in keys):
        return None
    return int(payload, 36)


def validate_bounce_address(value: str) -> None:
    """A bounce address leaves room for the token in the 64 characters of a local part."""
    local = value.rpartition("@")[0]
    if len(local) > MAX_BASE_LOCAL_PART:
        raise ValidationError(
            f"The part before @ may have at most {MAX_BASE_LOCAL_PART} characters: each message adds its "
            "own token to it, within the 64 an address allows.",
            code="bounce_address_too_long",
        )
    if SEPARATOR in local:
        raise ValidationError("The part before @ may not contain +: each message adds +token.", code="plus")


def _mac(payload: str, key: str | bytes) -> str:
    digest = salted_hmac(_SALT, payload, secret=key, algorithm="sha256").digest()[:_MAC_BYTES]
    return base64.b32encode(digest).decode("ascii").lower()


def _base36(number: int) -> str:
    if number < 0:
        raise ValueError("an Email id is positive")
    digits = ""
    while True:
        number, remainder = divmod(number, 36)
        digits = _DIGITS[remainder] + digits
        if not number:
            return digits
