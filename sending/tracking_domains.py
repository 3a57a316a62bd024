"""An SMTP account's tracking domain: the host its messages' links, open pixel and unsubscribe URLs use.

A marketer points a name of their own (links.example.com) by CNAME at the site's host, so one
marketer's links never share a reputation with another's. The name is used only once a check proved
it reaches this site: `check` fetches `/t/domain-check/<token>/` on it, and only this site can answer
that URL (the answer is an HMAC of the token under SECRET_KEY, never in the URL itself); the DNS
lookup beside it is advice for the person reading the result. Until a check passes, and whenever the
name changes, the account's messages use SITE_URL (delivery.message.tracking_site).

This module is the one writer of the verification (`tracking_domain_verified_at`, `..._checked_at`,
`..._error`) and of the cached map of verified domains the web's host check reads
(sending.selectors.verified_tracking_domains).
"""

import functools
import hashlib
import hmac
import ipaddress
import socket
import urllib.error
import urllib.request
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlsplit

import dns.exception
import dns.resolver
import idna
from django.conf import settings
from django.core import signing
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.db import transaction
from django.http.request import validate_host
from django.urls import reverse

from sending import dkim, selectors, smtp
from sending.models import SmtpAccount

CHECKING = "Checking…"
_CHECK_SALT = "sending.tracking_domain.check"
_ANSWER_SALT = b"sending.tracking_domain.answer"
_SHAPE_HELP = "Type the host name alone, like links.example.com: no http://, path, port or @."


# --- the name ------------------------------------------------------------------------------------


def normalized(value: str) -> str:
    """The tracking domain as stored: lower-case ASCII (IDNA), no trailing dot; "" for none.

    Raises ValidationError for anything that is not a host name of two labels or more, for an IP
    address, and for a host this site already serves (SITE_URL's, ALLOWED_HOSTS)."""
    value = (value or "").strip()
    if not value:
        return ""
    if any(character in value for character in ":/?#@\\ \t\r\n"):
        raise ValidationError(_SHAPE_HELP, code="shape")
    value = value.rstrip(".")
    try:
        ascii_name = idna.encode(value, uts46=True).decode("ascii")
    except idna.IDNAError as exc:
        raise ValidationError(f"{value!r} is not a valid host name ({exc}).", code="idna") from exc
    labels = ascii_name.split(".")
    if len(labels) < 2 or len(ascii_name) > 253:
        raise ValidationError("Use a full host name with a dot, like links.example.com.", code="labels")
    if labels[-1].isdigit():
        raise ValidationError("Use a host name, not an IP address.", code="address")
    # A name ALLOWED_HOSTS already covers would be served whole (the admin too): not a tracking domain.
    served = [pattern for pattern in settings.ALLOWED_HOSTS if pattern != "*"]
    if ascii_name == site_host() or validate_host(ascii_name, served):
        raise ValidationError(
            "That is this site's own host: a tracking domain is a name of yours (links.example.com) pointing at it.",
            code="site",
        )
    return ascii_name


# --- the URLs messages carry ----------------------------------------------------------------------


@dataclass(frozen=True)
class _Site:
    scheme: str
    host: str
    port_suffix: str  # ":8000", or "" for the scheme's own port


@functools.lru_cache(maxsize=4)
def _site(site_url: str) -> _Site:
    parts = urlsplit(site_url)
    return _Site(parts.scheme or "https", (parts.hostname or "").lower(), f":{parts.port}" if parts.port else "")


def site_host() -> str:
    """SITE_URL's host name: what a tracking domain's CNAME points at."""
    return _site(settings.SITE_URL).host


def dns_record(domain: str) -> tuple[str, str]:
    """(type, value) of the record that points `domain` here: a CNAME of SITE_URL's host, or an A
    (AAAA) record of its address when SITE_URL names an address."""
    host = site_host().strip("[]")
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return "CNAME", host
    return ("AAAA" if address.version == 6 else "A"), host


# --- the check -----------------------------------------------------------------------------------


def check_token(*, account_id: int, domain: str) -> str:
    return signing.dumps([account_id, domain], salt=_CHECK_SALT, compress=False)


def read_check_token(token: str) -> tuple[int, str] | None:
    """(account id, domain) of a check token signed here within TRACKING_DOMAIN_CHECK_MAX_AGE, or None."""
    if not token or len(token) > 400:
        return None
    try:
        account_id, domain = signing.loads(token, salt=_CHECK_SALT, max_age=settings.TRACKING_DOMAIN_CHECK_MAX_AGE)
    except (signing.BadSignature, TypeError, ValueError):
        return None
    if not isinstance(account_id, int) or not isinstance(domain, str):
        return None
    return account_id, domain


def check_answer(token: str) -> str:
    """What this site answers at a check URL: an HMAC of the token, so a server that only echoes the
    URL it was asked for cannot pass."""
    key = hashlib.sha256(_ANSWER_SALT + settings.SECRET_KEY.encode()).digest()
    return hmac.new(key, token.encode(), hashlib.sha256).hexdigest()


def check_url(*, domain: str, token: str) -> str:
    """The check's URL: on `domain` with SITE_URL's scheme and port, as messages will use it."""
    site = _site(settings.SITE_URL)
    return f"{site.scheme}://{domain}{site.port_suffix}" + reverse("tracking:domain_check", args=[token])


@dataclass(frozen=True)
class CheckResult:
    verified: bool
    detail: str


def check(*, account: SmtpAccount, now: datetime) -> CheckResult:
    """Check the account's tracking domain and record the result: verified when the check URL on it
    answered as only this site can; the DNS lookup is reported beside it. A domain changed while the
    check ran keeps its own (cleared) state: the result is written only for the name it was made for.

    Called from a web request, outside a transaction: the start is committed first, so the TLS
    proxy's ask endpoint lets a certificate be issued for the name while the fetch waits on it."""
    domain = account.tracking_domain
    if not domain:
        return CheckResult(False, "This account has no tracking domain to check.")
    _record(account, domain=domain, checked_at=now, verified_at=account.tracking_domain_verified_at, error=CHECKING)
    dns_note = _dns_note(domain)
    problem = _fetch_problem(domain=domain, token=check_token(account_id=account.pk, domain=domain))
    if problem:
        result = CheckResult(False, f"{problem} {dns_note}")
        _record(account, domain=domain, checked_at=now, verified_at=None, error=result.detail)
    else:
        origin = check_url(domain=domain, token="-").split("/t/")[0]
        result = CheckResult(True, f"{origin} answered as this site. {dns_note}")
        _record(account, domain=domain, checked_at=now, verified_at=now, error="")
    return result


def clear_verification(account: SmtpAccount) -> list[str]:
    """Forget the check of the account's tracking domain (its name changed): the fields to save."""
    account.tracking_domain_verified_at = None
    account.tracking_domain_checked_at = None
    account.tracking_domain_error = ""
    return ["tracking_domain_verified_at", "tracking_domain_checked_at", "tracking_domain_error"]


def forget_cached_domains() -> None:
    """Drop the cached map of verified domains now and again once the transaction that changed one
    commits: a read in between may have cached the rows as they were before it."""
    cache.delete(selectors.VERIFIED_TRACKING_DOMAINS_KEY)
    transaction.on_commit(lambda: cache.delete(selectors.VERIFIED_TRACKING_DOMAINS_KEY))


def _record(
    account: SmtpAccount, *, domain: str, checked_at: datetime, verified_at: datetime | None, error: str
) -> None:
    fields = {
        "tracking_domain_checked_at": checked_at,
        "tracking_domain_verified_at": verified_at,
        "tracking_domain_error": error,
    }
    with transaction.atomic():
        if SmtpAccount.objects.filter(pk=account.pk, tracking_domain=domain).update(**fields):
            for name, value in fields.items():
                setattr(account, name, value)
        forget_cached_domains()


def _fetch_problem(*, domain: str, token: str) -> str:
    """Why the check URL on `domain` did not answer as this site would, or "" when it did. No redirect
    is followed; the guard of SMTP destinations applies (public addresses, ports 80 and 443, unless
    SMTP_ALLOW_PRIVATE_HOSTS)."""
    url = check_url(domain=domain, token=token)
    parts = urlsplit(url)
    try:
        smtp.resolve_destination(
            domain,
            parts.port or (443 if parts.scheme == "https" else 80),
            service="tracking domain",
            allowed_ports=(80, 443),
        )
    except smtp.SmtpDestinationError as exc:
        return f"{exc}"
    # Straight to the name, as a mail client would come: no proxy from the environment, no redirect.
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}), _NoRedirect)
    request = urllib.request.Request(url, headers={"User-Agent": "campaign-manager tracking domain check"})
    try:
        with opener.open(request, timeout=settings.TRACKING_DOMAIN_CHECK_TIMEOUT_SECONDS) as response:
            body = response.read(200).decode("ascii", "replace").strip()
    except urllib.error.HTTPError as exc:
        return f"{parts.scheme}://{domain}/ answered HTTP {exc.code}, not this site's answer."
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        return f"{parts.scheme}://{domain}/ could not be reached: {reason}."
    if not hmac.compare_digest(body, check_answer(token)):
        return f"{parts.scheme}://{domain}/ answered, but not as this site: the name does not lead here."
    return ""


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


def _dns_note(domain: str) -> str:
    """What DNS says of the name, for the person reading the result (the fetch is the proof)."""
    host = site_host()
    try:
        answer = dkim.resolver().resolve(domain, "CNAME", search=False)
        target = str(answer[0].target).rstrip(".").lower()
    except (dns.exception.DNSException, IndexError):
        target = ""
    if target == host:
        return f"DNS: {domain} is a CNAME of {host}."
    if target:
        return f"DNS: {domain} is a CNAME of {target}, not of {host}."
    mine, ours = _addresses(domain), _addresses(host)
    if mine and mine & ours:
        return f"DNS: {domain} has no CNAME but resolves to {host}'s address."
    if mine:
        return f"DNS: {domain} has no CNAME of {host} and resolves elsewhere ({', '.join(sorted(mine))})."
    return f"DNS: {domain} does not resolve; create the CNAME {domain} -> {host}."


def _addresses(name: str) -> set[str]:
    try:
        return {str(info[4][0]) for info in socket.getaddrinfo(name, None, type=socket.SOCK_STREAM)}
    except (socket.gaierror, UnicodeError):
        return set()
