"""IMAP and POP3 sessions to a bounce mailbox: the transport under sending.mailbox.

Every connection goes through the SMTP destination guard (`smtp.resolve_destination`, with the
mailbox ports MAILBOX_ALLOWED_PORTS) and is made to the very address that was checked, and TLS
always verifies the certificate against the host name the mailbox names, trusting what SMTP does
(the system's CAs and SMTP_CA_FILE). There is no plain-text mode: `ssl` is implicit TLS (IMAPS,
POP3S), `starttls` upgrades before the login (IMAP STARTTLS, POP3 STLS) or fails. Every socket
operation waits at most MAILBOX_TIMEOUT seconds, and a message is read up to MAX_MESSAGE_BYTES:
a bounce's report is in its first kilobytes, the rest is the returned original.

Errors come out as MailboxError, whose text says what went wrong in words for the mailbox's owner.
"""

import contextlib
import imaplib
import poplib
import re
import socket
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol

from django.conf import settings

from sending import crypto, smtp
from sending.models import BounceMailbox

MAX_MESSAGE_BYTES = 2 * 1024 * 1024
# Read from a POP3 server at most this much at once: a line longer than this is read in pieces.
_POP3_READ_BYTES = 64 * 1024


class MailboxError(Exception):
    """The mailbox cannot be read; the text says why, for the mailbox's owner."""


@dataclass(frozen=True)
class MailboxMessage:
    key: str  # IMAP UID or POP3 UIDL
    raw: bytes


class Session(Protocol):
    """One logged-in session: its messages' keys, each message read on demand, and their removal."""

    def keys(self) -> list[str]: ...

    def fetch(self, key: str) -> bytes | None:  # None: the message went meanwhile
        ...

    def remove(self, key: str) -> None: ...

    def close(self) -> None: ...


# --- connections to the checked address -----------------------------------------------------------


def _connect_pinned(address: str, port: int, timeout: float | None) -> socket.socket:
    return socket.create_connection((address, port), timeout)


def _wrap(context: ssl.SSLContext, sock: socket.socket, host: str) -> ssl.SSLSocket:
    try:
        return context.wrap_socket(sock, server_hostname=host)
    except BaseException:
        sock.close()
        raise


class _PinnedIMAP4(imaplib.IMAP4):
    def __init__(self, host: str, port: int, *, pinned_address: str, timeout: float) -> None:
        self.pinned_address = pinned_address
        super().__init__(host, port, timeout=timeout)

    def _create_socket(self, timeout: float | None) -> socket.socket:
        return _connect_pinned(self.pinned_address, self.port, timeout)


class _PinnedIMAP4SSL(imaplib.IMAP4_SSL):
    def __init__(self, host: str, port: int, *, pinned_address: str, timeout: float, context: ssl.SSLContext) -> None:
        self.pinned_address = pinned_address
        super().__init__(host, port, ssl_context=context, timeout=timeout)

    def _create_socket(self, timeout: float | None) -> socket.socket:
        return _wrap(self.ssl_context, _connect_pinned(self.pinned_address, self.port, timeout), self.host)


class _CappedRetrieve(poplib.POP3):
    def retrieve(self, number: int, limit: int) -> bytes:
        """RETR, keeping the first `limit` bytes of the message and reading past the rest: poplib's
        retr keeps the whole message in memory and refuses lines over 2 KiB."""
        self.sock.sendall(f"RETR {number}\r\n".encode())
        status = self.file.readline(_POP3_READ_BYTES)
        if not status.startswith(b"+"):
            raise poplib.error_proto(status.strip() or b"-ERR connection closed")
        kept: list[bytes] = []
        size, line_start = 0, True
        while True:
            piece = self.file.readline(_POP3_READ_BYTES)
            if not piece:
                raise poplib.error_proto(b"-ERR the server closed the connection in the middle of a message")
            if line_start:
                if piece in (b".\r\n", b".\n"):
                    return b"".join(kept)
                if piece.startswith(b".."):
                    piece = piece[1:]  # dot-stuffing undone
            line_start = piece.endswith(b"\n")
            if size < limit:
                kept.append(piece[: limit - size])
                size += len(kept[-1])


class _PinnedPOP3(_CappedRetrieve):
    def __init__(self, host: str, port: int, *, pinned_address: str, timeout: float) -> None:
        self.pinned_address = pinned_address
        super().__init__(host, port, timeout)

    def _create_socket(self, timeout: float) -> socket.socket:
        return _connect_pinned(self.pinned_address, self.port, timeout)


class _PinnedPOP3SSL(_CappedRetrieve, poplib.POP3_SSL):
    def __init__(self, host: str, port: int, *, pinned_address: str, timeout: float, context: ssl.SSLContext) -> None:
        self.pinned_address, self.ssl_context = pinned_address, context
        poplib.POP3_SSL.__init__(self, host, port, timeout=timeout, context=context)

    def _create_socket(self, timeout: float) -> socket.socket:
        return _wrap(self.ssl_context, _connect_pinned(self.pinned_address, self.port, timeout), self.host)


# --- IMAP ------------------------------------------------------------------------------------------

_IMAP_UID = re.compile(rb"\bUID (\d+)")
_IMAP_SIZE = re.compile(rb"\bRFC822\.SIZE (\d+)")


def _by_size(keys: list[str], sizes: dict[str, int], *, limit: int) -> Iterator[list[str]]:
    """The keys in runs whose messages (each counted up to MAX_MESSAGE_BYTES) add up to about `limit`
    at most; a message over it alone. A key without a size is left out: the message went meanwhile."""
    run: list[str] = []
    total = 0
    for key in keys:
        if key not in sizes:
            continue
        size = min(sizes[key], MAX_MESSAGE_BYTES)
        if run and total + size > limit:
            yield run
            run, total = [], 0
        run.append(key)
        total += size
    if run:
        yield run


def imap_quote(name: str) -> str:
    """A folder name as an IMAP quoted string (imaplib sends arguments as they are)."""
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _imap_text(data: list[bytes | None] | list[object]) -> str:
    return " ".join(item.decode("utf-8", "replace") for item in data if isinstance(item, bytes)).strip()


class ImapSession:
    """A folder selected read-write. Processed messages are flagged \\Deleted and expunged by their UIDs
    (UID STORE, then UID EXPUNGE, RFC 4315, where the server offers UIDPLUS; else EXPUNGE) in groups of
    EXPUNGE_EVERY and when the session ends: a flag change and an expunge per message cost a server
    such as Dovecot work that grows with the folder, each time. A session cut before its group's
    turn leaves those messages for the next read, which processes them again, to no effect. Messages
    flagged by a session cut between the flag and the expunge are expunged when the next one opens."""

    EXPUNGE_EVERY = 200
    FETCH_MESSAGES = 100
    FETCH_BYTES = 1024 * 1024

    def __init__(self, conn: imaplib.IMAP4, *, folder: str) -> None:
        self.conn, self.folder = conn, folder
        _typ, capability = conn.capability()  # after the login: a server tells more than before it
        self.uidplus = b"UIDPLUS" in b" ".join(item for item in capability if isinstance(item, bytes)).upper().split()
        self.processed: list[str] = []
        self._expunge(self._search("DELETED"))

    def keys(self) -> list[str]:
        return self._search("UNDELETED")

    def _search(self, criterion: str) -> list[str]:
        typ, data = self.conn.uid("SEARCH", criterion)
        if typ != "OK":
            raise MailboxError(f"The server refused to list the folder {self.folder!r}: {_imap_text(data)}")
        return [uid.decode() for item in data if isinstance(item, bytes) for uid in item.split()]

    def fetch(self, key: str) -> bytes | None:
        return self.fetch_many([key]).get(key)

    def messages(self, keys: list[str]) -> Iterator[MailboxMessage]:
        """The messages of these keys, in their order, FETCH_MESSAGES (at most about FETCH_BYTES) to a
        UID FETCH: a round trip per message costs more than reading it."""
        for start in range(0, len(keys), self.FETCH_MESSAGES):
            group = keys[start : start + self.FETCH_MESSAGES]
            for part in _by_size(group, self._sizes(group), limit=self.FETCH_BYTES):
                raws = self.fetch_many(part)
                for key in part:
                    if key in raws:
                        yield MailboxMessage(key=key, raw=raws.pop(key))

    def _sizes(self, keys: list[str]) -> dict[str, int]:
        typ, data = self.conn.uid("FETCH", ",".join(keys), "(RFC822.SIZE)")
        if typ != "OK":
            raise MailboxError(f"The server refused to list the messages' sizes: {_imap_text(data)}")
        sizes = {}
        for item in data:
            line = item[0] if isinstance(item, tuple) else item
            uid, size = _IMAP_UID.search(line or b""), _IMAP_SIZE.search(line or b"")
            if uid and size:
                sizes[uid.group(1).decode()] = int(size.group(1))
        return sizes

    def fetch_many(self, keys: list[str]) -> dict[str, bytes]:
        """The messages of these keys, each up to MAX_MESSAGE_BYTES, by key; one gone meanwhile is absent."""
        typ, data = self.conn.uid("FETCH", ",".join(keys), f"(UID BODY.PEEK[]<0.{MAX_MESSAGE_BYTES}>)")
        if typ != "OK":
            raise MailboxError(f"The server refused to give messages {','.join(keys)}: {_imap_text(data)}")
        raws: dict[str, bytes] = {}
        for position, item in enumerate(data):
            if not (isinstance(item, tuple) and len(item) == 2 and isinstance(item[1], bytes)):
                continue
            # The UID comes before the literal (in its prefix) or after it (in the line that follows).
            after = data[position + 1] if position + 1 < len(data) else b""
            uid = _IMAP_UID.search(item[0]) or _IMAP_UID.search(after if isinstance(after, bytes) else b"")
            if uid:
                raws[uid.group(1).decode()] = item[1]
        return raws

    def remove(self, key: str) -> None:
        self.processed.append(key)
        if len(self.processed) >= self.EXPUNGE_EVERY:
            self._remove_processed()

    def _remove_processed(self) -> None:
        if self.processed:
            typ, data = self.conn.uid("STORE", ",".join(self.processed), "+FLAGS.SILENT", "(\\Deleted)")
            if typ != "OK":
                raise MailboxError(f"The server refused to delete the processed messages: {_imap_text(data)}")
            self._expunge(self.processed)
            self.processed = []

    def _expunge(self, uids: list[str]) -> None:
        if not uids:
            return
        if self.uidplus:
            typ, data = self.conn.uid("EXPUNGE", ",".join(uids))
        else:
            typ, data = self.conn.expunge()
        if typ != "OK":
            raise MailboxError(f"The server refused to expunge the processed messages: {_imap_text(data)}")

    def close(self) -> None:
        try:
            self._remove_processed()
            self.conn.close()
        finally:
            _quietly(self.conn.logout)


def _open_imap(mailbox: BounceMailbox, *, address: str, password: str) -> ImapSession:
    conn: imaplib.IMAP4
    timeout = settings.MAILBOX_TIMEOUT
    if mailbox.security == BounceMailbox.Security.SSL:
        conn = _PinnedIMAP4SSL(
            mailbox.host, mailbox.port, pinned_address=address, timeout=timeout, context=smtp.tls_context()
        )
    else:
        conn = _PinnedIMAP4(mailbox.host, mailbox.port, pinned_address=address, timeout=timeout)
    try:
        if mailbox.security == BounceMailbox.Security.STARTTLS:
            conn.starttls(smtp.tls_context())
        _imap_login(conn, mailbox.username, password)
        typ, data = conn.select(imap_quote(mailbox.folder))
        if typ != "OK":
            raise MailboxError(f"The folder {mailbox.folder!r} cannot be opened: {_imap_text(data)}")
        return ImapSession(conn, folder=mailbox.folder)
    except BaseException:
        _quietly(conn.shutdown)
        raise


def _imap_login(conn: imaplib.IMAP4, username: str, password: str) -> None:
    try:
        conn.login(username, password)
    except imaplib.IMAP4.abort:
        raise
    except imaplib.IMAP4.error as exc:
        raise MailboxError(f"The server refused the login: {_server_words(exc)}") from exc


# --- POP3 ------------------------------------------------------------------------------------------


class Pop3Session:
    """The inbox. A processed message is marked for deletion (DELE); the server deletes the marked ones
    when the session ends with QUIT, and keeps them all if it ends otherwise (read again next time)."""

    # QUIT's answer comes once the server has deleted every marked message, work that grows with their
    # number: it is given MAILBOX_TIMEOUT for each this many of them.
    DELETIONS_PER_TIMEOUT = 1000

    def __init__(self, conn: _CappedRetrieve) -> None:
        self.conn = conn
        self.numbers: dict[str, int] = {}
        self.deleted = 0

    def keys(self) -> list[str]:
        _response, lines, _octets = self.conn.uidl()
        for line in lines:
            number, _, uidl = line.decode("ascii", "replace").partition(" ")
            self.numbers[uidl.strip()] = int(number)
        return list(self.numbers)

    def fetch(self, key: str) -> bytes | None:
        return self.conn.retrieve(self.numbers[key], MAX_MESSAGE_BYTES)

    def remove(self, key: str) -> None:
        self.conn.dele(self.numbers[key])
        self.deleted += 1

    def close(self) -> None:
        try:
            if self.conn.sock is not None:
                turns = 1 + self.deleted // self.DELETIONS_PER_TIMEOUT
                self.conn.sock.settimeout(settings.MAILBOX_TIMEOUT * turns)
            self.conn.quit()
        except (OSError, poplib.error_proto) as exc:
            _quietly(self.conn.close)
            raise MailboxError(
                f"The session did not end cleanly ({exc}): the server keeps the messages this read processed, "
                "and the next read processes them again, to no effect."
            ) from exc


def _open_pop3(mailbox: BounceMailbox, *, address: str, password: str) -> Pop3Session:
    conn: _CappedRetrieve
    timeout = settings.MAILBOX_TIMEOUT
    if mailbox.security == BounceMailbox.Security.SSL:
        conn = _PinnedPOP3SSL(
            mailbox.host, mailbox.port, pinned_address=address, timeout=timeout, context=smtp.tls_context()
        )
    else:
        conn = _PinnedPOP3(mailbox.host, mailbox.port, pinned_address=address, timeout=timeout)
    try:
        if mailbox.security == BounceMailbox.Security.STARTTLS:
            conn.stls(smtp.tls_context())
        try:
            conn.user(mailbox.username)
            conn.pass_(password)
        except poplib.error_proto as exc:
            raise MailboxError(f"The server refused the login: {_server_words(exc)}") from exc
        return Pop3Session(conn)
    except BaseException:
        _quietly(conn.close)
        raise


# --- opening, and what an error means --------------------------------------------------------------


# What reading a mailbox may raise besides MailboxError: ssl's and socket's errors are OSErrors.
SESSION_ERRORS = (smtp.SmtpDestinationError, crypto.DecryptionError, OSError, imaplib.IMAP4.error, poplib.error_proto)


@contextlib.contextmanager
def translated_errors(mailbox: BounceMailbox) -> Iterator[None]:
    """Inside the block, every error of a session comes out as a MailboxError saying what it means."""
    try:
        yield
    except MailboxError:
        raise
    except SESSION_ERRORS as exc:
        raise MailboxError(describe(exc, mailbox)) from exc


def connect(mailbox: BounceMailbox) -> Session:
    """A logged-in session to the mailbox (the folder selected, for IMAP). Raises MailboxError."""
    with translated_errors(mailbox):
        # Decrypted first: a missing key is our configuration's fault, no server's.
        password = mailbox.get_password()
        address = smtp.resolve_destination(
            mailbox.host,
            mailbox.port,
            service=mailbox.get_protocol_display(),
            allowed_ports=settings.MAILBOX_ALLOWED_PORTS,
        )
        if mailbox.protocol == BounceMailbox.Protocol.POP3:
            return _open_pop3(mailbox, address=address, password=password)
        return _open_imap(mailbox, address=address, password=password)


def describe(exc: BaseException, mailbox: BounceMailbox) -> str:
    """What an error reading a mailbox means, in words for its owner."""
    if isinstance(exc, (MailboxError, smtp.SmtpDestinationError, crypto.DecryptionError)):
        return str(exc)
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"TLS certificate verification failed: {exc.verify_message or exc}"
    if isinstance(exc, ssl.SSLError):
        return f"TLS failed: {exc.reason or exc}"
    if isinstance(exc, TimeoutError):
        return f"The server did not answer within {settings.MAILBOX_TIMEOUT} s (MAILBOX_TIMEOUT)."
    if isinstance(exc, (imaplib.IMAP4.error, poplib.error_proto)):
        return f"The server said: {_server_words(exc)}"
    if isinstance(exc, OSError):
        return f"Cannot connect to {mailbox.host}:{mailbox.port}: {exc.strerror or exc}"
    return f"{type(exc).__name__}: {exc}"


def _server_words(exc: BaseException) -> str:
    """The server's own text of an imaplib or poplib error, without Python's quoting of bytes."""
    text = exc.args[0] if exc.args else exc
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return re.sub(r"^b(['\"])(.*)\1$", r"\2", str(text)).strip()


def messages(session: Session) -> Iterator[MailboxMessage]:
    """The session's messages, read as the loop reaches them (memory holds the list of keys and the
    messages of one read: one message with POP3, a group of about ImapSession.FETCH_BYTES with IMAP)."""
    keys = session.keys()
    if isinstance(session, ImapSession):
        yield from session.messages(keys)
        return
    for key in keys:
        raw = session.fetch(key)
        if raw is not None:
            yield MailboxMessage(key=key, raw=raw)


@dataclass
class ProbeResult:
    ok: bool
    message: str


def probe(mailbox: BounceMailbox) -> ProbeResult:
    """Connect, log in, open the folder; say how many messages wait. Changes nothing in the mailbox."""
    try:
        session = connect(mailbox)
    except MailboxError as exc:
        return ProbeResult(False, str(exc))
    try:
        with translated_errors(mailbox):
            waiting = len(session.keys())
    except MailboxError as exc:
        return ProbeResult(False, str(exc))
    finally:
        _quietly(session.close)
    where = f"in {mailbox.folder}" if mailbox.protocol == BounceMailbox.Protocol.IMAP else "in the inbox"
    return ProbeResult(True, f"Logged in; {waiting} message(s) waiting {where}.")


def _quietly(close: "_Closer") -> None:
    try:
        close()
    except Exception:  # noqa: BLE001 - ending a session whose answer no longer matters
        pass


class _Closer(Protocol):
    def __call__(self) -> object: ...
