"""Connections to marketers' SMTP servers.

Every connection goes through `open_connection`: the destination is checked
(no private or loopback addresses, mail ports only, unless
SMTP_ALLOW_PRIVATE_HOSTS) and the socket is connected to the very address that
was checked, so DNS cannot be re-pointed between the check and the connect.
TLS always verifies the certificate against the host name the account names.

A hostile server cannot hold a connection: opening one (connect, greeting, EHLO, STARTTLS, AUTH)
runs under one deadline of SMTP_TIMEOUT seconds, a caller may put any other run of commands under
one (`PinnedSMTP.deadline`), and outside those every command's write and reply has SMTP_TIMEOUT
seconds each. Replies are capped in lines and bytes.
"""

import contextlib
import functools
import ipaddress
import os
import smtplib
import socket
import ssl
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NoReturn

from django.conf import settings
from django.utils import timezone

from sending import crypto, dkim
from sending.models import SmtpAccount

if TYPE_CHECKING:
    from _socket import _Address

    from _typeshed import ReadableBuffer

# smtplib's answer to a command: the code and the text.
Reply = tuple[int, bytes]


class SmtpDestinationError(Exception):
    """The account points somewhere the workers must not connect to."""


class SmtpDeadlineExceeded(TimeoutError):
    """The server did not finish within the deadline: the connection was closed.

    A TimeoutError (socket.timeout), so callers treat it as any timed-out connection."""


class SmtpReplyTooLong(smtplib.SMTPServerDisconnected):
    """A reply went past MAX_REPLY_LINES or MAX_REPLY_BYTES: the connection was closed."""


# No real server's reply comes near these (an EHLO answer is some 10 lines, under 1 KiB); a
# server past them is broken or hostile, and reading on would only let it hold the worker.
MAX_REPLY_LINES = 100
MAX_REPLY_BYTES = 64 * 1024
_RECV_BYTES = 4096
_SEND_BYTES = 64 * 1024


@dataclass
class TestResult:
    ok: bool
    message: str


def tls_context() -> ssl.SSLContext:
    ca_file = settings.SMTP_CA_FILE
    return _tls_context(ca_file, _modified(ca_file))


# Loading the system's CA store is slow: once per process (and CA file version), not per
# connection. A context only holds configuration, so connections can share it.
@functools.lru_cache(maxsize=8)
def _tls_context(ca_file: str | None, _version: int | None) -> ssl.SSLContext:
    context = ssl.create_default_context()
    if ca_file:
        context.load_verify_locations(cafile=ca_file)
    return context


def _modified(path: str | None) -> int | None:
    try:
        return os.stat(path).st_mtime_ns if path else None
    except OSError:
        return None


# IPv6 forms that carry an IPv4 address, where the packets really go. Python 3.11's ipaddress
# calls 6to4, NAT64 and IPv4-compatible addresses global whatever they carry (2002:7f00:1:: is
# 127.0.0.1 through a 6to4 relay), so the address inside is checked as well.
_NAT64 = ipaddress.ip_network("64:ff9b::/96")  # RFC 6052: the IPv4 address in the last 32 bits
_NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")  # RFC 8215: local use only, never global
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")  # deprecated ::a.b.c.d


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """The IPv4 addresses an IPv6 address carries (mapped, 6to4, Teredo, NAT64, IPv4-compatible)."""
    if ip.ipv4_mapped:
        return [ip.ipv4_mapped]
    if ip.sixtofour:
        return [ip.sixtofour]
    if ip.teredo:
        return list(ip.teredo)  # the relay and the client (ipaddress undoes the client's obfuscation)
    if ip in _NAT64 or ip in _IPV4_COMPATIBLE:
        return [ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)]
    return []


def _is_public(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address):
        if ip in _NAT64_LOCAL:
            return False
        embedded = _embedded_ipv4(ip)
        if not all(v4.is_global and not v4.is_multicast for v4 in embedded):
            return False
        if ip.ipv4_mapped:
            return True  # judged by the IPv4 address alone
    return ip.is_global and not ip.is_multicast


def resolve_destination(
    host: str, port: int, *, service: str = "SMTP", allowed_ports: tuple[int, ...] | None = None
) -> str:
    """Return the address to connect to, or raise SmtpDestinationError.

    `service` names the protocol in the errors; `allowed_ports` (SMTP_ALLOWED_PORTS by default) are
    the ports it may use. A bounce mailbox (IMAP, POP3) goes through the same guard with its own ports."""
    host = (host or "").strip()
    if not host:
        raise SmtpDestinationError(f"The {service} host is empty.")
    allow_private = settings.SMTP_ALLOW_PRIVATE_HOSTS
    ports = settings.SMTP_ALLOWED_PORTS if allowed_ports is None else allowed_ports
    if not allow_private and port not in ports:
        allowed = ", ".join(str(p) for p in ports)
        raise SmtpDestinationError(f"Port {port} is not allowed for {service}; use one of {allowed}.")
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise SmtpDestinationError(f"Cannot resolve the {service} host {host!r}: {exc.strerror or exc}.") from exc
    addresses: list[str] = []
    for *_ignored, sockaddr in infos:
        if isinstance(sockaddr[0], str) and sockaddr[0] not in addresses:  # an IP address: a str
            addresses.append(sockaddr[0])
    if not allow_private:
        # Every address must be public: a name that resolves to both is refused.
        private = [a for a in addresses if not _is_public(a)]
        if private:
            raise SmtpDestinationError(
                f"The {service} host {host!r} resolves to a private, loopback or reserved address ({private[0]}); "
                "this is not allowed."
            )
    return addresses[0]


class _PinnedSocketMixin(smtplib.SMTP):
    """Connect to a pre-checked IP while TLS still verifies the account's host name."""

    pinned_address: str | None = None
    _host: str

    def connect(self, host: str = "localhost", port: int = 0, source_address: "_Address | None" = None) -> Reply:
        # smtplib verifies TLS against self._host, which only __init__ sets; we connect
        # after construction (to pin the address first), so without this the name is ""
        # and STARTTLS/SSL fail with "check_hostname requires server_hostname".
        self._host = host
        return super().connect(host, port, source_address)

    def _get_socket(self, host: str, port: int, timeout: float) -> socket.socket:
        return socket.create_connection((self.pinned_address or host, port), timeout, self.source_address)


# A subclass of the pinned mixin, which it precedes in both connections' classes (its _get_socket
# gives the pinned connect the time left): the same order of classes as two independent mixins.
class _BoundedDialogueMixin(_PinnedSocketMixin):
    """Every socket operation waits at most the time left before a deadline, and replies are capped.

    smtplib's own timeout bounds each read: a server sending one byte, or one "250-" line, just
    within it keeps a session open for ever. Here reads and writes run against a deadline: the one
    `deadline()` set for a run of commands, else one of `timeout` seconds for each write and each
    reply. Past it the socket is closed and SmtpDeadlineExceeded raised. Replies are read from the
    socket directly (not smtplib's unbounded buffered file) so the deadline holds between bytes.
    """

    _deadline: tuple[float, float] | None = None  # (time.monotonic() to finish by, the seconds it was set for)
    _inbuf = b""
    _inbuf_sock: socket.socket | None = None  # the socket _inbuf was read from: a new one (STARTTLS) starts empty

    @contextlib.contextmanager
    def deadline(self, seconds: float) -> Iterator[None]:
        """Everything done on the connection inside the block finishes within `seconds`."""
        outer, self._deadline = self._deadline, (time.monotonic() + seconds, seconds)
        try:
            yield
        finally:
            self._deadline = outer

    @contextlib.contextmanager
    def deadline_paused(self) -> Iterator[None]:
        """The block's time (the caller's own work, no server's) is not counted against the deadline."""
        started = time.monotonic()
        try:
            yield
        finally:
            if self._deadline is not None:
                finish_by, seconds = self._deadline
                self._deadline = (finish_by + time.monotonic() - started, seconds)

    def _current_deadline(self) -> tuple[float, float]:
        return self._deadline or (time.monotonic() + self.timeout, self.timeout)

    def _time_left(self, deadline: tuple[float, float]) -> float:
        """Seconds left before `deadline`; past it, close the connection and raise."""
        finish_by, seconds = deadline
        left = finish_by - time.monotonic()
        if left <= 0:
            self._expired(seconds)
        return left

    def _arm(self, sock: socket.socket, deadline: tuple[float, float]) -> None:
        sock.settimeout(self._time_left(deadline))

    def _expired(self, seconds: float) -> NoReturn:
        self.close()
        raise SmtpDeadlineExceeded(
            f"The SMTP server timed out: not done within {seconds:g} s (SMTP_TIMEOUT); the connection was closed."
        )

    def _get_socket(self, host: str, port: int, timeout: float) -> socket.socket:
        deadline = self._current_deadline()
        try:
            return super()._get_socket(host, port, self._time_left(deadline))
        except TimeoutError:
            self._expired(deadline[1])

    def send(self, s: "ReadableBuffer | str") -> None:
        if not self.sock:
            raise smtplib.SMTPServerDisconnected("please run connect() first")
        if isinstance(s, str):
            s = s.encode(self.command_encoding)
        deadline = self._current_deadline()
        view = memoryview(s)
        try:
            # In slices, each armed anew: an SSL socket's sendall waits the full timeout per record.
            while view:
                self._arm(self.sock, deadline)
                view = view[self.sock.send(view[:_SEND_BYTES]) :]
        except TimeoutError:
            self._expired(deadline[1])
        except OSError as exc:
            self.close()
            raise smtplib.SMTPServerDisconnected("Server not connected") from exc

    def getreply(self) -> Reply:
        """smtplib's getreply (same result and errors), bounded by the deadline and the caps."""
        if not self.sock:
            raise smtplib.SMTPServerDisconnected("please run connect() first")
        deadline = self._current_deadline()
        lines: list[bytes] = []
        size = 0
        while True:
            line = self._read_line(deadline, MAX_REPLY_BYTES - size)
            size += len(line)
            lines.append(line[4:].strip(b" \t\r\n"))
            try:
                code = int(line[:3])
            except ValueError:
                code = -1
                break
            if line[3:4] != b"-":
                break
            if len(lines) >= MAX_REPLY_LINES:
                self._too_long(f"more than {MAX_REPLY_LINES} lines")
        return code, b"\n".join(lines)

    def _read_line(self, deadline: tuple[float, float], allowance: int) -> bytes:
        sock = self.sock
        if sock is None:
            raise smtplib.SMTPServerDisconnected("please run connect() first")
        if self._inbuf_sock is not sock:
            self._inbuf, self._inbuf_sock = b"", sock
        while True:
            end = self._inbuf.find(b"\n", 0, allowance)
            if end >= 0:
                line, self._inbuf = self._inbuf[: end + 1], self._inbuf[end + 1 :]
                return line
            if len(self._inbuf) >= allowance:
                self._too_long(f"more than {MAX_REPLY_BYTES} bytes")
            self._arm(sock, deadline)
            try:
                chunk = sock.recv(_RECV_BYTES)
            except TimeoutError:
                self._expired(deadline[1])
            except OSError as exc:
                self.close()
                raise smtplib.SMTPServerDisconnected(f"Connection unexpectedly closed: {exc}") from exc
            if not chunk:
                self.close()
                raise smtplib.SMTPServerDisconnected("Connection unexpectedly closed")
            self._inbuf += chunk

    def _too_long(self, what: str) -> NoReturn:
        self.close()
        raise SmtpReplyTooLong(f"The SMTP server's reply was too long ({what}); the connection was closed.")

    def starttls(self, *args: Any, context: ssl.SSLContext | None = None, **kwargs: Any) -> Reply:
        # smtplib hands the connected socket to context.wrap_socket: arm it first, so the handshake
        # too waits no longer than the deadline leaves. _ArmingContext has all smtplib uses of an SSLContext.
        arming = _ArmingContext(context or tls_context(), self)
        reply: Reply = super().starttls(*args, context=arming, **kwargs)  # type: ignore[call-overload]
        return reply

    def close(self) -> None:
        super().close()
        self._inbuf, self._inbuf_sock = b"", None


class _ArmingContext:
    """An SSLContext whose wrap_socket first gives the socket the time left before the deadline."""

    def __init__(self, context: ssl.SSLContext, conn: _BoundedDialogueMixin) -> None:
        self.context, self.conn = context, conn

    def wrap_socket(self, sock: socket.socket, **kwargs: Any) -> ssl.SSLSocket:
        deadline = self.conn._current_deadline()
        try:
            self.conn._arm(sock, deadline)
            return self.context.wrap_socket(sock, **kwargs)
        except TimeoutError:
            sock.close()  # not the connection's socket yet (implicit TLS): closing the connection misses it
            self.conn._expired(deadline[1])
        except BaseException:
            sock.close()
            raise


# The bounded mixin comes first: its _get_socket gives the pinned connect the time left.
class PinnedSMTP(_BoundedDialogueMixin, _PinnedSocketMixin, smtplib.SMTP):
    pass


class PinnedSMTPSSL(_BoundedDialogueMixin, _PinnedSocketMixin, smtplib.SMTP_SSL):
    def _get_socket(self, host: str, port: int, timeout: float) -> socket.socket:
        sock = super()._get_socket(host, port, timeout)
        return _ArmingContext(self.context, self).wrap_socket(sock, server_hostname=self._host)


Connection = PinnedSMTP | PinnedSMTPSSL


def open_connection(
    account: SmtpAccount, *, timeout: float | None = None, login: bool = True
) -> tuple[Connection, Reply]:
    """An SMTP connection for the account, TLS negotiated and logged in.

    Returns (connection, last_reply) where last_reply is the server's (code, text)
    for the final step. Raises SmtpDestinationError, OSError or smtplib errors;
    SmtpDeadlineExceeded when connecting, greeting, EHLO, STARTTLS and AUTH together
    take more than `timeout` (SMTP_TIMEOUT) seconds. Resolving the host comes before
    and is bounded by the system resolver's own timeouts.
    """
    timeout = timeout or settings.SMTP_TIMEOUT
    # Decrypted before connecting: a missing key (crypto.DecryptionError) is our
    # configuration's fault, and the server should not see a half-done session for it.
    password = account.get_password() if login and account.username else None
    address = resolve_destination(account.host, account.port)
    context = tls_context()
    conn: Connection
    if account.security == account.Security.SSL:
        conn = PinnedSMTPSSL(timeout=timeout, context=context)
    else:
        conn = PinnedSMTP(timeout=timeout)
    conn.pinned_address = address
    try:
        with conn.deadline(timeout):
            reply = conn.connect(account.host, account.port)
            if reply[0] != 220:
                # A 421 or 554 greeting is the server's answer; keep its text instead of
                # failing later at EHLO with a vaguer error.
                raise smtplib.SMTPConnectError(*reply)
            reply = conn.ehlo()
            if account.security == account.Security.STARTTLS:
                reply = conn.starttls(context=context)
                reply = conn.ehlo()
            if password is not None:  # login and account.username
                reply = conn.login(account.username, password)
    except BaseException:
        close_quietly(conn)
        raise
    return conn, reply


def close_quietly(conn: smtplib.SMTP) -> None:
    """QUIT politely, or just drop the socket; never raise (the answer no longer matters)."""
    try:
        conn.quit()
    except Exception:
        try:
            conn.close()
        except Exception:
            pass


def drop(conn: smtplib.SMTP) -> None:
    """Close the socket without a word (the server is in the middle of a message); never raise."""
    try:
        conn.close()
    except Exception:
        pass


def format_reply(code: int | None, text: str | bytes | None) -> str:
    """The server's answer as one line: '250 2.0.0 Ok' (the text alone when there is no code)."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return f"{code} {text}".strip() if code else (text or "")


# smtplib's and ssl's errors are OSErrors; a DKIM key that cannot sign stops a session as it opens.
OPEN_ERRORS = (SmtpDestinationError, crypto.DecryptionError, dkim.DkimKeyError, OSError)


def describe_open_failure(exc: BaseException, account: SmtpAccount) -> str:
    """What an error raised by open_connection means, in words for the account's owner: the one
    mapping shared by the connection test, test sends and the sender's account notes."""
    if isinstance(
        exc, (SmtpDestinationError, crypto.DecryptionError, dkim.DkimKeyError, SmtpDeadlineExceeded, SmtpReplyTooLong)
    ):
        return str(exc)
    if isinstance(exc, smtplib.SMTPResponseException):
        return format_reply(exc.smtp_code, exc.smtp_error)  # the server's exact answer
    if isinstance(exc, smtplib.SMTPNotSupportedError):
        return f"The server does not support this: {exc}"
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"TLS certificate verification failed: {exc.verify_message or exc}"
    if isinstance(exc, ssl.SSLError):
        return f"TLS failed: {exc}"
    if isinstance(exc, smtplib.SMTPServerDisconnected):
        return f"The server closed the connection: {exc}"
    if isinstance(exc, smtplib.SMTPException):
        # SMTPException subclasses OSError: e.g. "No suitable authentication method found."
        # is no failure to connect.
        return f"SMTP failed: {exc}"
    return f"Cannot connect to {account.host}:{account.port}: {getattr(exc, 'strerror', None) or exc}"


def no_server_answered(exc: BaseException) -> bool:
    """Whether an error opening a connection means no server answered: refused, reset, TLS handshake,
    timeout before any reply, or a connection dropped before MAIL. Not a server's reply (4xx, 5xx)
    nor an SMTP feature missing (no AUTH method), which keep the reply rules."""
    if isinstance(exc, smtplib.SMTPServerDisconnected):
        return True
    return isinstance(exc, OSError) and not isinstance(exc, smtplib.SMTPException)


def test_connection(account: SmtpAccount) -> TestResult:
    """Connect, negotiate TLS, log in; report the server's exact answer."""
    try:
        conn, (code, text) = open_connection(account)
    except OPEN_ERRORS as exc:
        # A decryption error reported like any failure; uncaught it would make the admin action answer 500.
        return TestResult(False, describe_open_failure(exc, account))
    try:
        if not account.username:
            code, text = conn.noop()
    except OSError as exc:  # smtplib errors included
        return TestResult(False, f"The server failed after connecting: {exc}")
    finally:
        close_quietly(conn)
    # smtplib's noop() returns a 4xx/5xx answer instead of raising: that is no success.
    return TestResult(200 <= code < 400, format_reply(code, text))


def record_test_result(*, account: SmtpAccount, result: TestResult) -> None:
    account.last_tested_at = timezone.now()
    account.last_test_result = ("OK: " if result.ok else "Failed: ") + result.message
    type(account).objects.filter(pk=account.pk).update(
        last_tested_at=account.last_tested_at, last_test_result=account.last_test_result
    )
