"""What bounces.services reads a mailbox through: sending.mailbox's reader, or anything with its methods."""

from collections.abc import Iterator
from typing import Protocol


class Message(Protocol):
    @property
    def key(self) -> str: ...  # the mailbox's name for it (an IMAP UID, a POP3 UIDL)

    @property
    def raw(self) -> bytes: ...


class MailboxReader(Protocol):
    def messages(self) -> Iterator[Message]: ...

    def done(self, key: str) -> None: ...  # processed: deleted, or moved to a folder
