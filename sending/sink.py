"""The development SMTP sink's handler: store each message, report one line."""

import itertools
import time
from collections.abc import Callable
from email import message_from_bytes, policy
from pathlib import Path

from aiosmtpd.smtp import SMTP, Envelope, Session


class SinkHandler:
    def __init__(self, folder: Path, on_message: Callable[[str], object] | None = None) -> None:
        self.folder = folder
        self.on_message = on_message or (lambda line: None)
        self._counter = itertools.count(1)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        number = next(self._counter)
        path = self.folder / f"{time.strftime('%Y%m%d-%H%M%S')}-{number:06d}.eml"
        content = envelope.original_content or envelope.content
        assert isinstance(content, bytes)  # the Controller's default decode_data=False keeps bytes
        path.write_bytes(content)
        message = message_from_bytes(content, policy=policy.default)
        subject = message.get("Subject", "")
        self.on_message(f"{envelope.mail_from} -> {', '.join(envelope.rcpt_tos)}: {subject!s} ({path.name})")
        return "250 OK: stored"
