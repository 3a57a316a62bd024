"""Amazon SNS's HTTPS deliveries: the message's signature, and a subscription's confirmation.

SNS signs each message with a certificate it publishes on its own host (SigningCertURL). A message
is believed only when that URL is https on a host matching SNS_HOST_PATTERN, the certificate is
current, and its key verifies the signature over the message's fields in SNS's fixed order
(SignatureVersion 1: SHA1 with RSA; 2: SHA256 with RSA). Certificates are kept in memory by URL:
SNS signs every message with the same few. A SubscriptionConfirmation is confirmed by fetching its
SubscribeURL, under the same host rule, so a forged one can make us fetch nothing elsewhere.
"""

import base64
import binascii
import functools
import logging
import re
import ssl
import urllib.error
import urllib.request
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from django.conf import settings

log = logging.getLogger(__name__)

NOTIFICATION = "Notification"
SUBSCRIPTION_CONFIRMATION = "SubscriptionConfirmation"
UNSUBSCRIBE_CONFIRMATION = "UnsubscribeConfirmation"

# The fields each type's signature covers, in the order SNS writes them.
_SIGNED_FIELDS = {
    NOTIFICATION: ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"),
    SUBSCRIPTION_CONFIRMATION: ("Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type"),
    UNSUBSCRIBE_CONFIRMATION: ("Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type"),
}
_HASHES = {"1": hashes.SHA1, "2": hashes.SHA256}
_MAX_CERTIFICATE_BYTES = 64 * 1024


class SnsRefused(Exception):
    """The message is not SNS's: a bad signature, a certificate from elsewhere, a malformed body."""


class SnsUnavailable(Exception):
    """SNS's host could not be reached to check or confirm: SNS is asked to try again later."""


def verify(message: Mapping[str, Any]) -> None:
    """Raise SnsRefused unless `message` (the posted JSON) carries SNS's valid signature."""
    kind = message.get("Type")
    if kind not in _SIGNED_FIELDS:
        raise SnsRefused(f"not an SNS message type: {kind!r}")
    algorithm = _HASHES.get(str(message.get("SignatureVersion")))
    if algorithm is None:
        raise SnsRefused(f"unknown SignatureVersion {message.get('SignatureVersion')!r}")
    try:
        signature = base64.b64decode(str(message.get("Signature", "")), validate=True)
    except binascii.Error as exc:
        raise SnsRefused("the signature is not base64") from exc
    certificate = _certificate(_sns_url(message.get("SigningCertURL"), "SigningCertURL"))
    if not certificate.not_valid_before_utc <= datetime.now(UTC) <= certificate.not_valid_after_utc:
        raise SnsRefused("the signing certificate is not current")
    public_key = certificate.public_key()
    if not isinstance(public_key, rsa.RSAPublicKey):
        raise SnsRefused("the signing certificate's key is not RSA")
    try:
        public_key.verify(signature, _string_to_sign(message, kind), padding.PKCS1v15(), algorithm())
    except InvalidSignature as exc:
        raise SnsRefused("the signature does not match the message") from exc


def confirm_subscription(message: Mapping[str, Any]) -> None:
    """Confirm a verified SubscriptionConfirmation by fetching its SubscribeURL."""
    _fetch(_sns_url(message.get("SubscribeURL"), "SubscribeURL"))
    log.info("SNS subscription to %s confirmed", message.get("TopicArn"))


def _string_to_sign(message: Mapping[str, Any], kind: str) -> bytes:
    parts = []
    for field in _SIGNED_FIELDS[kind]:
        if field == "Subject" and field not in message:
            continue  # the one optional field: left out of the string when absent
        value = message.get(field)
        if not isinstance(value, str):
            raise SnsRefused(f"the message has no {field}")
        parts.append(f"{field}\n{value}\n")
    return "".join(parts).encode("utf-8")


def _sns_url(url: object, name: str) -> str:
    if not isinstance(url, str):
        raise SnsRefused(f"the message has no {name}")
    parts = urlsplit(url)
    if parts.scheme != "https" or parts.username or parts.password:
        raise SnsRefused(f"{name} is not a plain https URL")
    if not re.fullmatch(settings.SNS_HOST_PATTERN, parts.netloc, flags=re.IGNORECASE):
        raise SnsRefused(f"{name} is not on an SNS host: {parts.netloc}")
    return url


@functools.lru_cache(maxsize=16)
def _certificate(url: str) -> x509.Certificate:
    try:
        return x509.load_pem_x509_certificate(_fetch(url))
    except ValueError as exc:
        raise SnsRefused("SigningCertURL holds no PEM certificate") from exc


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    # A redirect would lead away from the host that was checked: it is an error instead.
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def _fetch(url: str) -> bytes:
    context = ssl.create_default_context(cafile=settings.SNS_CA_FILE or None)
    opener = urllib.request.build_opener(urllib.request.HTTPSHandler(context=context), _NoRedirects())
    try:
        with opener.open(url, timeout=settings.SNS_FETCH_TIMEOUT_SECONDS) as response:
            return bytes(response.read(_MAX_CERTIFICATE_BYTES))
    except (urllib.error.URLError, OSError) as exc:
        raise SnsUnavailable(f"{urlsplit(url).netloc} could not be reached: {exc}") from exc


def forget_certificates() -> None:
    """Drop the kept certificates (tests; a certificate SNS replaced is fetched again by its new URL)."""
    _certificate.cache_clear()
