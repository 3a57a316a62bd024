"""The SMTP dialogue of one connection: envelope, content, pipelining, the envelope written ahead,
reset and close. It decides nothing about the emails: it returns each server answer, and the
sender (or a test send) records it.

One recipient per message, so every refusal is the recipient's own. With PIPELINING (RFC 2920,
offered by every provider) MAIL, RCPT and DATA go out in one write, and the next message's three
can follow the content in the same write: one round trip a message. Internationalised addresses
(RFC 6531) go out with SMTPUTF8 when the server offers it; when it does not, the message cannot be
sent and `transact` says so without a word to the server.

An account that signs with DKIM has each message signed here, on its final bytes before MAIL
FROM: every kind of message goes through `transact`, and the key is parsed once per session.
"""

import re
import smtplib
from collections.abc import Callable

from django.conf import settings

from sending import dkim, smtp
from sending.models import SmtpAccount

_LEADING_DOT = re.compile(rb"(?m)^\.")
_PLAIN_ADDRESS = re.compile(r"[^\s<>()\[\],;:\"\\]+@[^\s<>()\[\],;:\"\\]+")
NO_SMTPUTF8 = "the server does not support SMTPUTF8 (RFC 6531), needed for this internationalised address"


class SmtpUtf8Unsupported(Exception):
    """The message needs SMTPUTF8 and the server does not offer it: nothing was written for it."""


def angle_address(address: str) -> str:
    """<address> for MAIL and RCPT; smtplib's quoteaddr parses every address again."""
    if _PLAIN_ADDRESS.fullmatch(address):
        return f"<{address}>"
    return smtplib.quoteaddr(address)


def envelope_commands(from_address: str, to_address: str) -> str:
    return f"MAIL FROM:{angle_address(from_address)}\r\nRCPT TO:{angle_address(to_address)}\r\nDATA\r\n"


def data_content(raw: bytes) -> bytes:
    """The message as sent after DATA's 354: leading dots doubled, ended by CRLF "." CRLF."""
    # The pattern runs only where a line starts with a dot (rare).
    content = _LEADING_DOT.sub(b"..", raw) if raw.startswith(b".") or b"\n." in raw else raw
    if not content.endswith(b"\r\n"):
        content += b"\r\n"
    return content + b".\r\n"


class SmtpSession:
    """One connection to an account's server, opened on first use.

    `before_content` runs right before a message's content is written: the sender settles the
    previous message's result there, so at most one delivered message is ever unrecorded, and checks
    that it still holds the row (campaigns.lease). When it raises, the content is not
    written and the connection is dropped (the server, waiting for a content, discards the message).

    Bounded in time, whatever the server does (silence, a byte at a time, endless "250-" lines):
    - `open` returns or raises within `timeout_seconds()` (SMTP_TIMEOUT) of its start, after
      resolving the host (bounded by the system resolver);
    - one message's `transact`, from MAIL FROM to the final reply to its content, pipelined or
      step by step, RSET after a refusal included, returns or raises within `timeout_seconds()`
      of its start, not counting the time `before_content` itself takes (the caller's own work);
    - `close` waits at most twice that (QUIT's write and its reply).
    Past the bound the connection is closed and the call raises sending.smtp.SmtpDeadlineExceeded,
    a TimeoutError (socket.timeout); a reply past sending.smtp.MAX_REPLY_LINES or MAX_REPLY_BYTES
    closes it with sending.smtp.SmtpReplyTooLong, an smtplib.SMTPServerDisconnected.
    """

    def __init__(self, account: SmtpAccount, *, before_content: Callable[[], object] = lambda: None) -> None:
        self.account = account
        self.before_content = before_content
        self.conn: smtp.Connection | None = None
        self.in_data = False  # a content was written and its answer not read: a loss now may be a delivery
        # (from, to) of the next message, written behind the last content
        self.pending_envelope: tuple[str, str] | None = None
        self.opened = 0
        self.signer: dkim.Signer | None = None
        self.signer_loaded = False

    @property
    def connected(self) -> bool:
        return self.conn is not None

    @staticmethod
    def timeout_seconds() -> float:
        """The bound on `open` and on each `transact` (see the class)."""
        return settings.SMTP_TIMEOUT

    def open(self) -> None:
        """Connect, TLS, log in. Raises what sending.smtp.open_connection raises, and, before
        connecting, crypto.DecryptionError or dkim.DkimKeyError for a DKIM key it cannot use
        (all of them in smtp.OPEN_ERRORS)."""
        if not self.signer_loaded:
            # An account that does not sign runs no DKIM code at all.
            self.signer = dkim.signer_for(self.account) if self.account.dkim_enabled else None
            self.signer_loaded = True
        self.conn, _reply = smtp.open_connection(self.account, timeout=self.timeout_seconds())
        self.opened += 1

    def pipelines(self, from_address: str, to_address: str) -> bool:
        return (from_address + to_address).isascii() and self._open_conn().has_extn("pipelining")

    def transact(
        self, from_address: str, to_address: str, raw: bytes, next_envelope: tuple[str, str] | None = None
    ) -> tuple[int, str]:
        """MAIL, one RCPT, DATA: the server's (code, text) for the step that decided.

        Raises SmtpUtf8Unsupported (nothing written), or the connection's errors (lost, timed out).
        `next_envelope` (from, to): written behind this content when the dialogue pipelines.
        Within `timeout_seconds()` (see the class)."""
        conn = self._open_conn()
        if self.signer is not None:
            raw = self.signer.sign(raw)  # before the deadline starts: our work, not the server's
        with conn.deadline(self.timeout_seconds()):
            if self.pipelines(from_address, to_address):
                return self._pipelined(from_address, to_address, raw, next_envelope)
            options = []
            if not (from_address + to_address).isascii():
                if not conn.has_extn("smtputf8"):
                    raise SmtpUtf8Unsupported(NO_SMTPUTF8)
                options = ["SMTPUTF8"] + (["BODY=8BITMIME"] if conn.has_extn("8bitmime") else [])
            return self._stepwise(from_address, to_address, raw, options)

    def _open_conn(self) -> smtp.Connection:
        if self.conn is None:
            raise smtplib.SMTPServerDisconnected("please run open() first")  # as smtplib before connect()
        return self.conn

    def _stepwise(self, from_address: str, to_address: str, raw: bytes, options: list[str]) -> tuple[int, str]:
        conn = self._open_conn()
        code, resp = conn.mail(from_address, options)
        if code != 250:
            self.reset()
            return code, smtp.format_reply(code, resp)
        code, resp = conn.rcpt(to_address)
        if code not in (250, 251):
            self.reset()
            return code, smtp.format_reply(code, resp)
        self._content_may_go()
        self.in_data = True
        try:
            code, resp = conn.data(raw)
        except smtplib.SMTPDataError as exc:
            self.in_data = False
            self.reset()
            return exc.smtp_code, smtp.format_reply(exc.smtp_code, exc.smtp_error)
        # No `finally`: on a lost connection in_data stays True, so the loss counts as a possible delivery.
        self.in_data = False
        return code, smtp.format_reply(code, resp)

    def _pipelined(
        self, from_address: str, to_address: str, raw: bytes, next_envelope: tuple[str, str] | None
    ) -> tuple[int, str]:
        """MAIL, RCPT and DATA in one write, their three answers read after; the next message's
        three may open the group of this content (RFC 2920), so both are answered together."""
        conn = self._open_conn()
        if self.pending_envelope is None:
            conn.send(envelope_commands(from_address, to_address))
        elif self.pending_envelope != (from_address, to_address):
            raise RuntimeError(f"the envelope written ahead was for {self.pending_envelope}, not {to_address}")
        self.pending_envelope = None
        mail = conn.getreply()
        if mail[0] == 421:
            return mail[0], smtp.format_reply(*mail)  # closing the channel: no further answers come
        rcpt = conn.getreply()
        if rcpt[0] == 421:
            return rcpt[0], smtp.format_reply(*rcpt)
        data = conn.getreply()
        if data[0] == 354 and (mail[0] != 250 or rcpt[0] not in (250, 251)):
            # A server that opens DATA although it refused the envelope gets an empty,
            # recipient-less message it must refuse; the envelope's answer is the verdict.
            conn.send(".\r\n")
            conn.getreply()
        for code, resp in (mail, rcpt):
            if code not in (250, 251):
                self.reset()
                return code, smtp.format_reply(code, resp)
        if data[0] != 354:
            self.reset()
            return data[0], smtp.format_reply(*data)
        self._content_may_go()
        self.in_data = True
        content = data_content(raw)
        if next_envelope is not None:
            content += envelope_commands(*next_envelope).encode("ascii")
            self.pending_envelope = next_envelope
        conn.send(content)
        code, resp = conn.getreply()
        self.in_data = False  # as stepwise: stays True if the connection was lost above
        return code, smtp.format_reply(code, resp)

    def _content_may_go(self) -> None:
        """before_content, its time not counted in the transaction's deadline (it is the caller's)."""
        conn = self._open_conn()
        try:
            with conn.deadline_paused():
                self.before_content()
        except BaseException:
            self.conn = None
            smtp.drop(conn)  # a QUIT now would be read as the content
            self.pending_envelope = None
            raise

    def reset(self) -> None:
        """RSET after a refusal; a connection that fails it is closed."""
        try:
            self._open_conn().rset()
        except (smtplib.SMTPException, OSError):
            self.close()

    def lost(self) -> bool:
        """The connection failed: close it, and say whether a content may have been delivered."""
        maybe_delivered, self.in_data = self.in_data, False
        self.close()
        return maybe_delivered

    def close(self) -> None:
        if self.conn is not None:
            conn, self.conn = self.conn, None
            if self.pending_envelope is not None or self.in_data:
                # The server waits for a message's content: a QUIT would be read as content and
                # never answered. Dropping the connection makes it discard the unfinished message.
                smtp.drop(conn)
            else:
                smtp.close_quietly(conn)
        self.pending_envelope = None
        self.in_data = False
