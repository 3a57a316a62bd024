"""Reading an SMTP account's bounce mailbox: what the bounce processing calls.

    with open_mailbox(account.bounce_mailbox) as reader:
        for message in reader.messages():
            ...  # act on message.raw, idempotently
            reader.done(message.key)

Messages stream one at a time (memory holds one message and the list of keys, whatever the
mailbox holds). `done` removes a processed message from the mailbox:

- IMAP: flagged \\Deleted and expunged by UID (UID EXPUNGE where the server offers UIDPLUS, else
  EXPUNGE), 200 at a time and when the session ends. Deleted rather than moved to a "Processed" folder:
  the mailbox only receives DSNs to VERP addresses, what a bounce means is kept in the database, and
  a folder of processed copies grows until the mailbox's quota refuses the next bounces.
- POP3: DELE, which the server carries out when the session ends with QUIT.

A session cut before its messages' removal keeps them, and the next read processes them again:
processing must be idempotent.

Each read is recorded on the mailbox (sending.services): when, how many were processed, and the
error that ended it (login refused, TLS failed, folder missing, server unreachable), which
`open_mailbox` raises as MailboxError after recording it.
"""

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from sending import mailbox_sessions, services
from sending.mailbox_sessions import MailboxError, MailboxMessage
from sending.models import BounceMailbox

__all__ = ["MailboxError", "MailboxMessage", "MailboxReader", "open_mailbox"]

log = logging.getLogger(__name__)


class MailboxReader:
    def __init__(self, session: mailbox_sessions.Session, mailbox: BounceMailbox) -> None:
        self.session, self.mailbox = session, mailbox
        self.processed = 0
        self._done: set[str] = set()

    def messages(self) -> Iterator[MailboxMessage]:
        """The messages in the mailbox when the read began, each fetched when the loop reaches it."""
        with mailbox_sessions.translated_errors(self.mailbox):
            yield from mailbox_sessions.messages(self.session)

    def done(self, key: str) -> None:
        """The message was processed: remove it from the mailbox. A second call for a key does nothing."""
        if key in self._done:
            return
        with mailbox_sessions.translated_errors(self.mailbox):
            self.session.remove(key)
        self._done.add(key)
        self.processed += 1


@contextmanager
def open_mailbox(mailbox: BounceMailbox) -> Iterator[MailboxReader]:
    """A reader of the mailbox, logged in (the folder selected, for IMAP). Raises MailboxError, recorded
    on the mailbox, when it cannot be read; a read that ends well records its time and count."""
    try:
        session = mailbox_sessions.connect(mailbox)
    except MailboxError as exc:
        services.record_mailbox_error(mailbox_id=mailbox.pk, error=str(exc), processed=0)
        raise
    reader = MailboxReader(session, mailbox)
    try:
        yield reader
    except MailboxError as exc:
        _close_after_failure(reader)
        services.record_mailbox_error(mailbox_id=mailbox.pk, error=str(exc), processed=reader.processed)
        raise
    except BaseException:
        # The caller failed, not the mailbox: what it marked done is still removed.
        _close_after_failure(reader)
        services.record_mailbox_read(mailbox_id=mailbox.pk, processed=reader.processed)
        raise
    try:
        with mailbox_sessions.translated_errors(mailbox):
            session.close()
    except MailboxError as exc:
        services.record_mailbox_error(mailbox_id=mailbox.pk, error=str(exc), processed=reader.processed)
        raise
    services.record_mailbox_read(mailbox_id=mailbox.pk, processed=reader.processed)


def _close_after_failure(reader: MailboxReader) -> None:
    try:
        with mailbox_sessions.translated_errors(reader.mailbox):
            reader.session.close()
    except MailboxError:
        log.warning("bounce mailbox %s: the session did not end cleanly", reader.mailbox.pk, exc_info=True)
