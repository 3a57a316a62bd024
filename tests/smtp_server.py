"""A real SMTP server (aiosmtpd) inside the test process, and a throw-away CA for its TLS.

Reusable by every suite that talks SMTP (account tests, the sending engine):

    from tests.smtp_server import smtp_server_factory, tls_files  # noqa: F401  (pytest fixtures)

    def test_something(smtp_server_factory):
        server = smtp_server_factory(RecordingHandler(rcpt_replies={"full@example.org": (452, "4.2.2 Mailbox full")}))
        ...  # connect to server.host:server.port
        server.handler.wait_for(lambda h: len(h.messages) == 1)

`RecordingHandler` answers per recipient (at RCPT and at DATA) with configured
codes, records every accepted message, every login attempt and counts TCP
connections (the controller's own start-up probe is not counted). It can also
drop the connection after a recipient's DATA, without answering, a set number
of times (what a crash or a timeout after DATA looks like to the client).
The reply maps may be changed while the server runs (keys lower-cased).
"""

import asyncio
import datetime
import email
import email.policy
import socket
import ssl
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tests.isolation import free_port

SERVER_HOSTNAME = "smtp.test.example"


# --- TLS: a private CA and a server certificate ------------------------------------------


@dataclass(frozen=True)
class TlsFiles:
    ca_file: Path  # PEM of the CA: what SMTP_CA_FILE points to
    cert_file: Path  # PEM of the server certificate
    key_file: Path  # PEM of the server's private key
    server_names: tuple

    def server_context(self):
        """An SSLContext for the server side (STARTTLS or implicit TLS)."""
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.cert_file, self.key_file)
        return context


def _pem_key(key):
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def make_tls_files(directory, *, server_names=("localhost",)):
    """Write a throw-away CA and a certificate for `server_names` (DNS names only) to `directory`."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)
    not_before, not_after = now - datetime.timedelta(minutes=5), now + datetime.timedelta(days=2)

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Campaign Manager test CA")])
    ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(ca_ski, critical=False)
        .sign(ca_key, hashes.SHA256())
    )

    server_key = ec.generate_private_key(ec.SECP256R1())
    server_cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, server_names[0])]))
        .issuer_name(ca_name)
        .public_key(server_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in server_names]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=True,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(server_key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False)
        .sign(ca_key, hashes.SHA256())
    )

    files = TlsFiles(
        ca_file=directory / "ca.pem",
        cert_file=directory / "server.pem",
        key_file=directory / "server.key",
        server_names=tuple(server_names),
    )
    files.ca_file.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    files.cert_file.write_bytes(server_cert.public_bytes(serialization.Encoding.PEM))
    files.key_file.write_bytes(_pem_key(server_key))
    files.key_file.chmod(0o600)
    return files


# --- the handler: scripted replies and a record of what arrived -----------------------------


@dataclass
class ReceivedMessage:
    mail_from: str
    rcpt_tos: list
    content: bytes  # exactly as received after DATA (dot-unstuffed)
    peer: tuple
    login: bytes | None = None  # the authenticated user, if any

    def parsed(self):
        return email.message_from_bytes(self.content, policy=email.policy.default)


@dataclass
class AuthAttempt:
    mechanism: str
    login: str
    success: bool


@dataclass
class RecordingHandler:
    """aiosmtpd handler: answers per recipient with configured codes and records what it saw.

    rcpt_replies: address -> (code, text) answered to RCPT TO instead of 250 (address compared lower-cased).
    pipelining: offer PIPELINING, so the sender writes MAIL, RCPT and DATA at once.
    data_replies: address -> (code, text) answered to DATA for a message whose recipients include it.
    users: login -> password the server accepts (only used when the server offers AUTH).
    drop_after_data: address -> how many times to take a message for it and then close the
        connection without answering (the message is recorded in `dropped`, not in `messages`).
    accept_connections: once this many connections were accepted, further ones are closed
        before the greeting (None: no limit). May be set while the server runs.
    """

    rcpt_replies: dict = field(default_factory=dict)
    data_replies: dict = field(default_factory=dict)
    users: dict = field(default_factory=dict)
    drop_after_data: dict = field(default_factory=dict)
    accept_connections: int | None = None
    # Offer PIPELINING in the EHLO answer (RFC 2920); aiosmtpd reads commands in order either way.
    pipelining: bool = False
    noop_reply: str = "250 OK"
    messages: list = field(default_factory=list)  # ReceivedMessage, accepted ones only
    refused: list = field(default_factory=list)  # (stage, address, code, text)
    dropped: list = field(default_factory=list)  # ReceivedMessage taken, then the connection closed unanswered
    # AuthAttempt rows. Not named auth_*: aiosmtpd offers every handler attribute auth_X as a mechanism X.
    logins: list = field(default_factory=list)
    connections: int = 0  # TCP connections accepted (TLS handshake or not), hung up ones included
    pipelined_rcpts: int = 0  # RCPT commands that arrived with the DATA command behind them

    def __post_init__(self):
        self._changed = threading.Condition()
        self.rcpt_replies = {k.lower(): v for k, v in self.rcpt_replies.items()}
        self.data_replies = {k.lower(): v for k, v in self.data_replies.items()}
        self.drop_after_data = {k.lower(): v for k, v in self.drop_after_data.items()}

    # Called from the server's event-loop thread; tests read from the main thread.
    def _record(self, fn):
        with self._changed:
            fn()
            self._changed.notify_all()

    def connection_accepted(self):
        """Count a new connection; False when it is to be hung up on (see accept_connections)."""
        self._record(lambda: setattr(self, "connections", self.connections + 1))
        return self.accept_connections is None or self.connections <= self.accept_connections

    def delivered_to(self):
        """Every recipient of every accepted message, in arrival order (repeats kept)."""
        with self._changed:
            return [address.lower() for m in self.messages for address in m.rcpt_tos]

    def wait_for(self, predicate, timeout=5.0):
        """Wait until predicate(handler) is true; fail the test after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while not predicate(self):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    pytest.fail(f"SMTP test server: condition not met within {timeout}s")
                self._changed.wait(remaining)

    # aiosmtpd hooks
    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        session.host_name = hostname  # this hook's duty once a handler defines it
        if self.pipelining:
            responses.insert(-1, "250-PIPELINING")
        return responses

    async def handle_NOOP(self, server, session, envelope, arg):
        return self.noop_reply

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        # Was DATA already written behind this RCPT (a pipelined client)? aiosmtpd buffers it unread.
        if b"DATA\r\n" in bytes(getattr(server._reader, "_buffer", b"")):
            self._record(lambda: setattr(self, "pipelined_rcpts", self.pipelined_rcpts + 1))
        reply = self.rcpt_replies.get(address.lower())
        if reply is not None:
            code, text = reply
            self._record(lambda: self.refused.append(("RCPT", address, code, text)))
            return f"{code} {text}"
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server, session, envelope):
        for address in envelope.rcpt_tos:
            if self.drop_after_data.get(address.lower(), 0) > 0:
                self.drop_after_data[address.lower()] -= 1
                message = self._received(session, envelope)
                self._record(lambda: self.dropped.append(message))
                # Close without a reply; connection_lost then cancels this coroutine, so
                # aiosmtpd never writes the status to the closed transport.
                server.transport.close()
                await asyncio.Event().wait()
        for address in envelope.rcpt_tos:
            reply = self.data_replies.get(address.lower())
            if reply is not None:
                code, text = reply
                self._record(lambda: self.refused.append(("DATA", address, code, text)))
                return f"{code} {text}"
        message = self._received(session, envelope)
        self._record(lambda: self.messages.append(message))
        return "250 2.0.0 OK: queued"

    @staticmethod
    def _received(session, envelope):
        return ReceivedMessage(
            mail_from=envelope.mail_from,
            rcpt_tos=list(envelope.rcpt_tos),
            content=bytes(envelope.original_content),
            peer=session.peer,
            login=session.login_data,
        )

    def authenticate(self, server, session, envelope, mechanism, auth_data):
        """aiosmtpd `authenticator`: accept exactly the configured users."""
        if not isinstance(auth_data, LoginPassword):
            return AuthResult(success=False, handled=False)
        login = auth_data.login.decode("utf-8", "replace")
        password = auth_data.password.decode("utf-8", "replace")
        success = login in self.users and self.users[login] == password
        self._record(lambda: self.logins.append(AuthAttempt(mechanism, login, success)))
        return AuthResult(success=success, handled=False, auth_data=auth_data)


@dataclass
class RateLimitingHandler(RecordingHandler):
    """A RecordingHandler that limits messages per client like Postfix's anvil
    (smtpd_client_message_rate_limit with anvil_rate_time_unit): every MAIL FROM counts, refused
    ones too; a window opens at the first MAIL after the previous one ended; past `limit` in it,
    MAIL is answered "450 4.7.1 Error: too much mail from <ip>", Postfix's own words.

    clock: the time the windows follow (the test's Clock, so tests drive it; default: real time).
    accepted_at: the clock's time of every MAIL accepted, for checking any 60 s window.
    """

    limit: int = 60
    window_seconds: float = 60.0
    # sliding: count the MAILs accepted in the last window_seconds instead (a stricter server than
    # anvil: no burst at a window's turn), refused ones not counted.
    sliding: bool = False
    clock: object = None
    accepted_at: list = field(default_factory=list)
    refused_mail: int = 0

    def __post_init__(self):
        super().__post_init__()
        self._window_start = None
        self._in_window = 0

    def _now(self):
        return self.clock() if self.clock is not None else datetime.datetime.now(datetime.UTC)

    async def handle_MAIL(self, server, session, envelope, address, mail_options):
        now = self._now()
        if self.sliding:
            recent = sum(
                1 for at in self.accepted_at[-self.limit :] if (now - at).total_seconds() < self.window_seconds
            )
            self._in_window = recent
        elif self._window_start is None or (now - self._window_start).total_seconds() >= self.window_seconds:
            self._window_start, self._in_window = now, 0
        self._in_window += 1
        if self._in_window > self.limit:
            self._record(lambda: setattr(self, "refused_mail", self.refused_mail + 1))
            return f"450 4.7.1 Error: too much mail from {session.peer[0]}"
        self._record(lambda: self.accepted_at.append(now))
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 2.1.0 OK"

    def busiest_window(self, seconds=60):
        """The most MAILs accepted in any `seconds` window."""
        times = sorted(self.accepted_at)
        busiest, first = 0, 0
        for last, at in enumerate(times):
            while (at - times[first]).total_seconds() >= seconds:
                first += 1
            busiest = max(busiest, last - first + 1)
        return busiest


# --- the server ---------------------------------------------------------------------------


class _HangUp(asyncio.Protocol):
    """Closes a connection before the greeting: a server that is full or going down."""

    def connection_made(self, transport):
        transport.close()


class _CountingController(Controller):
    def factory(self):
        # aiosmtpd makes one SMTP protocol object per accepted TCP connection.
        if not self.handler.connection_accepted():
            return _HangUp()
        return super().factory()


class SmtpServer:
    """An aiosmtpd Controller on 127.0.0.1 in a background thread.

    tls: TlsFiles. With implicit_tls=False the server offers STARTTLS; with
    implicit_tls=True the whole connection is TLS (what SMTP_SSL / port 465 expects).
    auth: offer AUTH PLAIN/LOGIN checked against handler.users (after STARTTLS,
    or at once under implicit TLS).
    """

    def __init__(
        self,
        handler=None,
        *,
        tls=None,
        implicit_tls=False,
        auth=False,
        require_starttls=False,
        host="127.0.0.1",
        hostname=SERVER_HOSTNAME,
        **smtp_kwargs,
    ):
        self.handler = handler if handler is not None else RecordingHandler()
        self.host = host
        self.port = None
        self.tls = tls
        kwargs = dict(smtp_kwargs)
        if auth:
            kwargs["authenticator"] = self.handler.authenticate
        if tls is not None and implicit_tls:
            kwargs["ssl_context"] = tls.server_context()
            # The connection is TLS from the first byte: AUTH need not wait for STARTTLS
            # (aiosmtpd only knows about STARTTLS-TLS).
            kwargs.setdefault("auth_require_tls", False)
        elif tls is not None:
            kwargs["tls_context"] = tls.server_context()
            kwargs["require_starttls"] = require_starttls
        self._kwargs = kwargs
        self._hostname = hostname
        self.controller = None

    def start(self, port=None):
        """Listen on a free port, or on `port` (a server back after an outage, where it was)."""
        last_error = None
        for _attempt in range(1 if port else 5):  # a free port can be taken between probe and bind
            listen_port = port or free_port()
            controller = _CountingController(
                self.handler, hostname=self.host, port=listen_port, server_hostname=self._hostname, **self._kwargs
            )
            try:
                controller.start()
            except OSError as exc:
                last_error = exc
                continue
            self.controller, self.port = controller, listen_port
            # Controller.start() opened one probe connection and waited until its
            # protocol object was built, so the count is exactly 1 here.
            with self.handler._changed:
                self.handler.connections = 0
            return self
        raise last_error

    def stop(self):
        if self.controller is not None:
            self.controller.stop()
            self.controller = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory):
    """A throw-away CA and a server certificate for "localhost" (generated once per run)."""
    return make_tls_files(tmp_path_factory.mktemp("smtp-tls"), server_names=("localhost",))


@pytest.fixture
def smtp_server_factory():
    """Start SMTP servers: smtp_server_factory(handler=None, tls=..., implicit_tls=..., auth=...).

    Every server started is stopped at the end of the test.
    """
    started = []

    def start(handler=None, **kwargs):
        server = SmtpServer(handler, **kwargs).start()
        started.append(server)
        return server

    yield start
    for server in reversed(started):
        server.stop()


# --- a hostile server: stalls, trickles and floods -----------------------------------------------


class RawSmtpServer(threading.Thread):
    """A plain-socket SMTP server on 127.0.0.1 for what aiosmtpd cannot be made to do: answer one
    byte at a time, send "250-" lines without end, flood a reply.

    It answers like a minimal server (greeting, EHLO, MAIL, RCPT, DATA, RSET, NOOP, QUIT) except
    at the stages given in `hostile`: stage -> behaviour(server, sock, final_line) writing the
    answer its own way. Stages: "greeting", a command's verb ("EHLO", "MAIL", ...) and "CONTENT"
    (the answer to a message's content). A behaviour gives up after a while and writes the normal
    answer (`final_line`), so a client without a bound on the whole gets through in the end instead
    of hanging the test run. `client_hung_up` is set when the client closes the connection.
    """

    def __init__(self, hostile=None, *, pipelining=False):
        super().__init__(daemon=True)
        self.hostile = dict(hostile or {})
        self.pipelining = pipelining
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.host, self.port = "127.0.0.1", self.listener.getsockname()[1]
        self.client_hung_up = threading.Event()
        self.messages = []  # contents received, as lines
        self._stopped = threading.Event()

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self._stopped.set()
        self.listener.close()

    def run(self):
        try:
            sock, _ = self.listener.accept()
        except OSError:
            return
        with sock:
            try:
                self._serve(sock)
            except OSError:  # reset or broken pipe: the client went away
                pass
        self.client_hung_up.set()

    def _answer(self, sock, stage, line):
        behaviour = self.hostile.get(stage)
        if behaviour is None or self._stopped.is_set():
            sock.sendall(line)
        else:
            behaviour(self, sock, line)

    def _serve(self, sock):
        incoming = sock.makefile("rb")
        self._answer(sock, "greeting", b"220 raw.example ESMTP\r\n")
        in_data, content = False, []
        for raw in incoming:
            line = raw.rstrip(b"\r\n")
            if in_data:
                if line == b".":
                    in_data = False
                    self.messages.append(content)
                    content = []
                    self._answer(sock, "CONTENT", b"250 2.0.0 OK: queued\r\n")
                else:
                    content.append(line)
                continue
            verb = line.split(b":")[0].split(b" ")[0].upper().decode()
            if verb == "EHLO":
                extensions = b"250-PIPELINING\r\n" if self.pipelining else b""
                self._answer(sock, verb, b"250-raw.example\r\n" + extensions + b"250 8BITMIME\r\n")
            elif verb == "DATA":
                in_data = True
                self._answer(sock, verb, b"354 go ahead\r\n")
            elif verb == "QUIT":
                sock.sendall(b"221 bye\r\n")
                return
            else:  # MAIL, RCPT, RSET, NOOP
                self._answer(sock, verb, b"250 OK\r\n")
        # EOF: the client closed the connection.

    def wait(self, seconds):
        """Sleep, or return at once when the test is over."""
        self._stopped.wait(seconds)


def trickle_continuation_lines(interval=0.2, give_up_after=60):
    """A behaviour: "250-" lines one every `interval` seconds, each well within a per-read timeout."""

    def behave(server, sock, final_line):
        for n in range(give_up_after):
            sock.sendall(final_line[:3] + b"-still going " + str(n).encode() + b"\r\n")
            server.wait(interval)
        sock.sendall(final_line)

    return behave


def trickle_bytes(interval=0.1, give_up_after=60):
    """A behaviour: the answer one byte every `interval` seconds, padded out to `give_up_after` bytes."""

    def behave(server, sock, final_line):
        padded = final_line[:-2] + b" " + b"." * max(give_up_after - len(final_line), 0) + b"\r\n"
        for byte in padded:
            sock.sendall(bytes([byte]))
            server.wait(interval)

    return behave


def flood_lines(lines, line_bytes=20):
    """A behaviour: `lines` continuation lines of `line_bytes` bytes at once, then the answer."""

    def behave(server, sock, final_line):
        filler = b"x" * line_bytes
        sock.sendall(b"".join(final_line[:3] + b"-" + filler + b"\r\n" for _ in range(lines)) + final_line)

    return behave


def stall(seconds):
    """A behaviour: the normal answer after `seconds` of silence."""

    def behave(server, sock, final_line):
        server.wait(seconds)
        sock.sendall(final_line)

    return behave
