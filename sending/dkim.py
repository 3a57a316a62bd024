"""DKIM (RFC 6376, RFC 8463) for an SMTP account: its key, the TXT record to publish, the check of
what DNS publishes, and the signature of every message the account sends.

Signing happens in sending.session, on a message's final bytes right before its content goes out,
so every kind of message (a campaign's, a test send, a subscription confirmation) is signed the same
way. A `Signer` holds the parsed key: a session makes one when it opens, so the key is decrypted and
parsed once per batch, not once per message.

The signature is dkimpy's format (its header selection and relaxed header canonicalisation), with
the body canonicalised by `relaxed_body` and the key operation done by `cryptography` (OpenSSL):
dkimpy's own signing parses the PEM and computes RSA in Python for every message, some twenty times
the cost of the rest of the signature.
"""

import base64
import hashlib
import re
import time
from dataclasses import dataclass
from enum import StrEnum

import dkim
import dns.exception
import dns.resolver
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa, utils
from django.conf import settings
from dkim.canonicalization import Relaxed
from dkim.util import InvalidTagValueList, parse_tag_value

from sending.models import SmtpAccount

Algorithm = SmtpAccount.DkimAlgorithm
RSA_KEY_BITS = 2048

# Signed when present, in this order (RFC 6376 5.4.1 and the list-unsubscribe headers of RFC 8058,
# whose one-click promise must not be added to a message by anyone else).
SIGNED_HEADERS = (
    b"from",
    b"to",
    b"subject",
    b"date",
    b"message-id",
    b"reply-to",
    b"mime-version",
    b"content-type",
    b"list-id",
    b"list-unsubscribe",
    b"list-unsubscribe-post",
)
# Signed once more than they occur (over-signed): a second From, To or Subject added on the way
# breaks the signature instead of being shown in place of the signed one.
OVERSIGNED_HEADERS = (b"from", b"to", b"subject")

_LABEL = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)\Z")
_TRAILING_WSP = re.compile(rb"[ \t]+(?=\r\n)")
_WSP_RUN = re.compile(rb"[ \t]{2,}|\t")
_FIELD_START = re.compile(rb"\r\n(?![ \t])")
_B64_LINE = 72


class DkimSetupError(ValueError):
    """A domain, selector or algorithm that cannot be used: the text says why, for the form or command."""


class DkimKeyError(Exception):
    """The account's stored DKIM key cannot be used to sign (not a key of its algorithm)."""


# --- names and alignment ----------------------------------------------------------------------


def normalise_domain(value: str) -> str:
    """The DKIM domain as it goes in d= and DNS: lower case, IDNA, no trailing dot; DkimSetupError if
    it is no domain name."""
    domain = (value or "").strip().rstrip(".").lower()
    if not domain:
        raise DkimSetupError("Give the domain to sign for, such as example.com.")
    try:
        domain = domain.encode("idna").decode("ascii")
    except UnicodeError as exc:
        raise DkimSetupError(f"{value!r} is not a domain name.") from exc
    labels = domain.split(".")
    if len(labels) < 2 or len(domain) > 253 or not all(_LABEL.match(label) for label in labels):
        raise DkimSetupError(f"{value!r} is not a domain name with at least two labels, such as example.com.")
    return domain


def normalise_selector(value: str) -> str:
    """The selector: one or more DNS labels (letters, digits, hyphens), lower-cased."""
    selector = (value or "").strip().lower()
    if not selector:
        raise DkimSetupError("Give a selector, such as mail2026: the name the key is published under.")
    if len(selector) > 63 or not all(_LABEL.match(label) for label in selector.split(".")):
        raise DkimSetupError(f"{value!r} is not a selector: use letters, digits and hyphens, such as mail2026.")
    return selector


def from_domain(from_email: str) -> str:
    domain = from_email.rpartition("@")[2].strip().rstrip(".").lower()
    try:
        return domain.encode("idna").decode("ascii")
    except UnicodeError:
        return domain


def aligned(domain: str, from_email: str) -> bool:
    """Whether d=`domain` aligns with the From address (DMARC relaxed alignment): the From domain itself
    or a parent of it."""
    sender = from_domain(from_email)
    return sender == domain or sender.endswith("." + domain)


def check_alignment(domain: str, from_email: str) -> None:
    if not aligned(domain, from_email):
        raise DkimSetupError(
            f"The DKIM domain {domain} must be the From address's domain ({from_domain(from_email)}) or a parent "
            "of it: receivers check DKIM against the domain the reader sees (DMARC alignment)."
        )


# --- keys and the record ------------------------------------------------------------------------


def generate_private_key(algorithm: str) -> str:
    """A new private key as PKCS#8 PEM: RSA 2048 or Ed25519."""
    key: rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey
    if algorithm == Algorithm.RSA:
        key = rsa.generate_private_key(public_exponent=65537, key_size=RSA_KEY_BITS)
    elif algorithm == Algorithm.ED25519:
        key = ed25519.Ed25519PrivateKey.generate()
    else:
        raise DkimSetupError(f"Unknown DKIM algorithm {algorithm!r}: use rsa-sha256 or ed25519-sha256.")
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode("ascii")


def _load_key(pem: str, algorithm: str) -> rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(pem.encode("ascii"), password=None)
    except (ValueError, TypeError, UnicodeError) as exc:
        raise DkimKeyError(f"The stored DKIM key cannot be read: {exc}") from exc
    wanted = rsa.RSAPrivateKey if algorithm == Algorithm.RSA else ed25519.Ed25519PrivateKey
    if not isinstance(key, wanted):
        raise DkimKeyError(f"The stored DKIM key is not a {algorithm} key: generate a new one.")
    return key


def key_type(algorithm: str) -> str:
    """The record's k= for the algorithm."""
    return "ed25519" if algorithm == Algorithm.ED25519 else "rsa"


def public_value(private_pem: str, algorithm: str) -> str:
    """The record's p=: base64 of the RSA SubjectPublicKeyInfo, or of the raw 32-byte Ed25519 key."""
    public = _load_key(private_pem, algorithm).public_key()
    if isinstance(public, ed25519.Ed25519PublicKey):
        der = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    else:
        der = public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(der).decode("ascii")


@dataclass(frozen=True)
class DkimRecord:
    """The TXT record to publish: its name and its value."""

    name: str
    value: str

    @property
    def strings(self) -> list[str]:
        """The value cut into the 255-character strings one TXT record is made of (RFC 1035 3.3.14);
        a receiver joins them. Most DNS providers cut a long value themselves."""
        return [self.value[i : i + 255] for i in range(0, len(self.value), 255)]

    @property
    def zone_line(self) -> str:
        """The record as a line of a BIND zone file."""
        quoted = " ".join(f'"{part}"' for part in self.strings)
        return f"{self.name}. IN TXT ( {quoted} )"


def dkim_record(account: SmtpAccount) -> DkimRecord | None:
    """The TXT record for the account's key (`<selector>._domainkey.<domain>`, `v=DKIM1; k=...; p=...`),
    or None when it has none. Raises crypto.DecryptionError or DkimKeyError for a key it cannot read."""
    if not account.has_dkim_key:
        return None
    return record_for(
        domain=account.dkim_domain,
        selector=account.dkim_selector,
        algorithm=account.dkim_algorithm,
        private_pem=account.get_dkim_private_key(),
    )


def record_for(*, domain: str, selector: str, algorithm: str, private_pem: str) -> DkimRecord:
    value = f"v=DKIM1; k={key_type(algorithm)}; p={public_value(private_pem, algorithm)}"
    return DkimRecord(name=f"{selector}._domainkey.{domain}", value=value)


# --- signing --------------------------------------------------------------------------------------


def relaxed_body(body: bytes) -> bytes:
    """The body canonicalised "relaxed" (RFC 6376 3.4.4), byte for byte as dkimpy's Relaxed does it,
    with its regular expressions run only where they can change something."""
    if b" \r\n" in body or b"\t" in body:
        body = _TRAILING_WSP.sub(b"", body)
    if b"  " in body or b"\t" in body:
        body = _WSP_RUN.sub(b" ", body)
    end = len(body)
    while body.endswith(b"\r\n", 0, end):
        end -= 2
    if end == len(body):
        body += b"\r\n"  # a last line without its line break gets one
    else:
        body = body[: end + 2] if end > 0 else b""
    return b"" if body == b"\r\n" else body


def _headers_and_body(raw: bytes) -> tuple[list[tuple[bytes, bytes]], bytes]:
    """The header fields as dkimpy holds them ((name, value with its line breaks)) and the body."""
    end = raw.find(b"\r\n\r\n")
    head, body = (raw, b"") if end < 0 else (raw[: end + 2], raw[end + 4 :])
    fields = []
    for field in _FIELD_START.split(head.removesuffix(b"\r\n")):
        name, colon, value = field.partition(b":")
        if colon:
            fields.append((name, value + b"\r\n"))
    return fields, body


class Signer:
    """Signs messages for one account: its key parsed once, each message signed in well under a
    millisecond (an RSA 2048 signature with OpenSSL; Ed25519 far less)."""

    def __init__(self, *, domain: str, selector: str, algorithm: str, private_pem: str) -> None:
        self.domain, self.selector, self.algorithm = domain.encode("ascii"), selector.encode("ascii"), algorithm
        self.key = _load_key(private_pem, algorithm)

    def sign(self, raw: bytes, *, now: float | None = None) -> bytes:
        """`raw` with a DKIM-Signature header in front (relaxed/relaxed)."""
        headers, body = _headers_and_body(raw)
        present = [name.lower() for name, _value in headers]
        signed = [name for name in SIGNED_HEADERS for _ in range(present.count(name))]
        signed += [name for name in OVERSIGNED_HEADERS if name in present]
        body_hash = base64.b64encode(hashlib.sha256(relaxed_body(body)).digest())
        tags = [
            b"v=1",
            b"a=" + self.algorithm.encode("ascii"),
            b"c=relaxed/relaxed",
            b"d=" + self.domain,
            b"s=" + self.selector,
            b"t=%d" % int(time.time() if now is None else now),
            b"h=" + b" : ".join(signed),
            b"bh=" + body_hash,
            b"b=",
        ]
        unsigned: bytes = dkim.fold(b"; ".join(tags), namelen=len(b"DKIM-Signature"))
        hasher = hashlib.sha256()
        dkim.hash_headers(
            hasher, Relaxed, Relaxed.canonicalize_headers(headers), signed, (b"DKIM-Signature", b" " + unsigned), {}
        )
        signature = base64.b64encode(self._signature(hasher.digest()))
        folded = b"\r\n ".join(signature[i : i + _B64_LINE] for i in range(0, len(signature), _B64_LINE))
        return b"DKIM-Signature: " + unsigned + b"\r\n " + folded + b"\r\n" + raw

    def _signature(self, digest: bytes) -> bytes:
        if isinstance(self.key, ed25519.Ed25519PrivateKey):
            return self.key.sign(digest)  # RFC 8463: Ed25519 over the SHA-256 of the signed data
        return self.key.sign(digest, padding.PKCS1v15(), utils.Prehashed(hashes.SHA256()))


def signer_for(account: SmtpAccount) -> Signer | None:
    """The account's signer, or None when it does not sign. Raises crypto.DecryptionError (a key the
    configured FIELD_ENCRYPTION_KEYS cannot read) or DkimKeyError."""
    if not (account.dkim_enabled and account.has_dkim_key):
        return None
    return Signer(
        domain=account.dkim_domain,
        selector=account.dkim_selector,
        algorithm=account.dkim_algorithm,
        private_pem=account.get_dkim_private_key(),
    )


# --- what DNS publishes -----------------------------------------------------------------------------


class DnsOutcome(StrEnum):
    MATCHES = "matches"
    DIFFERS = "differs"
    NOT_FOUND = "not found"
    DNS_ERROR = "DNS error"


@dataclass(frozen=True)
class DnsCheck:
    outcome: DnsOutcome
    detail: str


def resolver() -> dns.resolver.Resolver:
    """A resolver bounded by DKIM_DNS_TIMEOUT_SECONDS: the system's, or DKIM_DNS_NAMESERVERS (at
    DKIM_DNS_PORT) when set."""
    nameservers = list(settings.DKIM_DNS_NAMESERVERS)
    resolver = dns.resolver.Resolver(configure=not nameservers)
    if nameservers:
        resolver.nameservers = nameservers
        resolver.port = settings.DKIM_DNS_PORT
    resolver.lifetime = resolver.timeout = settings.DKIM_DNS_TIMEOUT_SECONDS
    return resolver


def check_published_record(record: DkimRecord) -> DnsCheck:
    """Whether DNS publishes `record`: its key (k= and p=) is what the TXT record at its name says."""
    try:
        answer = resolver().resolve(record.name, "TXT", search=False)
    except dns.resolver.NXDOMAIN:
        return DnsCheck(DnsOutcome.NOT_FOUND, f"{record.name} does not exist in DNS.")
    except dns.resolver.NoAnswer:
        return DnsCheck(DnsOutcome.NOT_FOUND, f"{record.name} has no TXT record.")
    except dns.exception.Timeout:
        return DnsCheck(DnsOutcome.DNS_ERROR, f"No DNS answer for {record.name} within the time allowed.")
    except dns.exception.DNSException as exc:
        return DnsCheck(DnsOutcome.DNS_ERROR, f"DNS failed for {record.name}: {exc}")
    published = [b"".join(rdata.strings) for rdata in answer]
    keys = [text for text in published if text.lstrip().startswith(b"v=DKIM1")] or published
    if not keys:
        return DnsCheck(DnsOutcome.NOT_FOUND, f"{record.name} has no TXT record.")
    wanted = _key_tags(record.value.encode("ascii"))
    for text in keys:
        if _key_tags(text) == wanted:
            return DnsCheck(DnsOutcome.MATCHES, f"{record.name} publishes this account's key.")
    shown = keys[0].decode("ascii", "replace")
    return DnsCheck(DnsOutcome.DIFFERS, f"{record.name} publishes another key: {shown[:120]}")


def _key_tags(value: bytes) -> tuple[bytes, bytes] | None:
    """(k, p) of a key record, whitespace taken out of p; None for a value that is no tag list."""
    try:
        tags = parse_tag_value(value)
    except InvalidTagValueList:
        return None
    return tags.get(b"k", b"rsa").lower(), re.sub(rb"\s+", b"", tags.get(b"p", b""))
