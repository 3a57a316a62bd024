"""One link asked over HTTP(S) from a worker, through the SMTP destination guard.

Every request, and every redirect's, resolves its host once through `smtp.resolve_destination`
(service "HTTP", ports LINK_CHECK_ALLOWED_PORTS; SMTP_ALLOW_PRIVATE_HOSTS lifts both rules as it does
for SMTP) and connects to the very address that was checked, with the link's host in the Host header
and, for HTTPS, in SNI and the certificate check: a name re-pointed between the check and the connect
(DNS rebinding) cannot lead the request to an address the guard refused.

HEAD first; GET where the server refuses HEAD (403, 405, 501), its body never read. Redirects are
followed by hand, up to LINK_CHECK_MAX_REDIRECTS, each hop guarded afresh. Connecting and each read
wait at most LINK_CHECK_TIMEOUT_SECONDS.
"""

import functools
import socket
from dataclasses import dataclass
from enum import Enum
from urllib.parse import urljoin, urlsplit

import urllib3
from django.conf import settings
from urllib3.exceptions import HTTPError, NewConnectionError, SSLError
from urllib3.exceptions import TimeoutError as Urllib3Timeout

from sending import smtp

REDIRECT_CODES = frozenset({301, 302, 303, 307, 308})
# Servers that do not do HEAD answer one of these to it; GET then tells what a reader gets.
HEAD_REFUSED_CODES = frozenset({403, 405, 501})
_DEFAULT_PORTS = {"http": 80, "https": 443}


class Failure(str, Enum):
    """Why a link got no final answer."""

    TIMEOUT = "timeout"
    DNS = "dns"
    GUARD = "guard"
    TLS = "tls"
    CONNECTION = "connection"
    REDIRECTS = "redirects"
    INVALID = "invalid"


@dataclass(frozen=True)
class Probe:
    """What asking a URL gave: the last answer's status and URL, or why there was none."""

    url: str
    status_code: int | None = None
    final_url: str = ""
    redirects: int = 0
    method: str = ""
    failure: Failure | None = None
    detail: str = ""


class _NoAnswer(Exception):
    def __init__(self, failure: Failure, detail: str) -> None:
        super().__init__(detail)
        self.failure, self.detail = failure, detail


@functools.cache
def user_agent() -> str:
    site = getattr(settings, "SITE_URL", "") or ""
    where = f"; +{site}" if site else ""
    return f"CampaignManager-LinkCheck/1.0 (checks the links of an email before it is sent{where})"


def probe(url: str) -> Probe:
    """Ask `url` (HEAD, else GET) and follow its redirects; never raises for what the network does."""
    current, redirects, method = url, 0, ""
    while True:
        try:
            status, location, method = _ask(current)
        except _NoAnswer as no_answer:
            return Probe(
                url=url, final_url=current, redirects=redirects, failure=no_answer.failure, detail=no_answer.detail
            )
        if status in REDIRECT_CODES and location:
            if redirects >= settings.LINK_CHECK_MAX_REDIRECTS:
                return Probe(
                    url=url,
                    status_code=status,
                    final_url=current,
                    redirects=redirects,
                    method=method,
                    failure=Failure.REDIRECTS,
                    detail=f"more than {settings.LINK_CHECK_MAX_REDIRECTS} redirects",
                )
            current, redirects = urljoin(current, location.strip()), redirects + 1
            continue
        return Probe(url=url, status_code=status, final_url=current, redirects=redirects, method=method)


def _ask(url: str) -> tuple[int, str, str]:
    """(status, Location, method) of one hop: HEAD, or GET where HEAD was refused."""
    status, location = _request("HEAD", url)
    if status in HEAD_REFUSED_CODES:
        status, location = _request("GET", url)
        return status, location, "GET"
    return status, location, "HEAD"


def _request(method: str, url: str) -> tuple[int, str]:
    scheme, host, port, target, host_header = _parts(url)
    address = _checked_address(host, port)
    timeout = urllib3.Timeout(connect=settings.LINK_CHECK_TIMEOUT_SECONDS, read=settings.LINK_CHECK_TIMEOUT_SECONDS)
    pool: urllib3.HTTPConnectionPool
    if scheme == "https":
        pool = urllib3.HTTPSConnectionPool(
            address,
            port,
            timeout=timeout,
            retries=False,
            ssl_context=smtp.tls_context(),
            server_hostname=host,
            assert_hostname=host,
        )
    else:
        pool = urllib3.HTTPConnectionPool(address, port, timeout=timeout, retries=False)
    headers = {"Host": host_header, "User-Agent": user_agent(), "Accept": "*/*"}
    try:
        response = pool.urlopen(
            method,
            target,
            headers=headers,
            redirect=False,
            retries=False,
            preload_content=False,
            assert_same_host=False,
        )
        status, location = response.status, response.headers.get("Location", "")
        response.close()  # the body is never read: the status says what a reader gets
    except NewConnectionError as exc:  # a subclass of urllib3's timeout: refused, unreachable, or timed out
        if isinstance(exc.__cause__, TimeoutError | socket.timeout):
            raise _NoAnswer(Failure.TIMEOUT, f"no answer within {settings.LINK_CHECK_TIMEOUT_SECONDS:g} s") from exc
        raise _NoAnswer(Failure.CONNECTION, f"the connection failed ({_reason(exc)})") from exc
    except Urllib3Timeout as exc:
        raise _NoAnswer(Failure.TIMEOUT, f"no answer within {settings.LINK_CHECK_TIMEOUT_SECONDS:g} s") from exc
    except SSLError as exc:
        raise _NoAnswer(Failure.TLS, f"the TLS connection failed ({_reason(exc)})") from exc
    except (HTTPError, OSError) as exc:
        raise _NoAnswer(Failure.CONNECTION, f"the connection failed ({_reason(exc)})") from exc
    finally:
        pool.close()
    return status, location


def _parts(url: str) -> tuple[str, str, int, str, str]:
    """(scheme, host, port, request target, Host header) of an http(s) URL, else _NoAnswer."""
    try:
        split = urlsplit(url)
        port = split.port
    except ValueError as exc:
        raise _NoAnswer(Failure.INVALID, f"is not a valid URL ({exc})") from exc
    scheme, host = split.scheme.lower(), split.hostname or ""
    if scheme not in _DEFAULT_PORTS:
        raise _NoAnswer(Failure.INVALID, f"leads to a {scheme or 'relative'} URL, not a web page")
    if not host:
        raise _NoAnswer(Failure.INVALID, "names no host")
    try:
        ascii_host = host.encode("idna").decode("ascii") if not host.isascii() else host
    except UnicodeError as exc:
        raise _NoAnswer(Failure.INVALID, f"has a host name that is not valid ({host!r})") from exc
    port = port or _DEFAULT_PORTS[scheme]
    shown = f"[{ascii_host}]" if ":" in ascii_host else ascii_host
    host_header = shown if port == _DEFAULT_PORTS[scheme] else f"{shown}:{port}"
    target = (split.path or "/") + (f"?{split.query}" if split.query else "")
    return scheme, ascii_host, port, target, host_header


def _checked_address(host: str, port: int) -> str:
    try:
        return smtp.resolve_destination(host, port, service="HTTP", allowed_ports=settings.LINK_CHECK_ALLOWED_PORTS)
    except smtp.SmtpDestinationError as exc:
        cause = exc.__cause__
        if isinstance(cause, socket.gaierror):
            raise _NoAnswer(Failure.DNS, f"the host {host} does not resolve ({cause.strerror or cause})") from exc
        raise _NoAnswer(Failure.GUARD, str(exc)) from exc


def _reason(exc: BaseException) -> str:
    """What the operating system or the TLS layer said, in a few words, without urllib3's wrapping."""
    cause = exc.__cause__ or getattr(exc, "reason", None)
    if isinstance(cause, OSError) and cause.strerror:
        return str(cause.strerror)
    if isinstance(cause, BaseException):
        return str(cause) or type(cause).__name__
    return str(exc) or type(exc).__name__
