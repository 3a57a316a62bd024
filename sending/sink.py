"""The development SMTP sink's handler: store each message, report one line."""

import itertools
import time
from email import message_from_bytes, policy
from pathlib import Path


class SinkHandler:
    def __init__(self, folder: Path, on_message=None):
        self.folder = folder
        self.on_message = on_message or (lambda line: None)
        self._counter = itertools.count(1)

    async def handle_DATA(self, server, session, envelope):
        number = next(self._counter)
        path = self.folder / f"{time.strftime('%Y%m%d-%H%M%S')}-{number:06d}.eml"
        path.write_bytes(envelope.original_content or envelope.content)
        message = message_from_bytes(envelope.original_content or envelope.content, policy=policy.default)
        subject = message.get("Subject", "")
        self.on_message(
            f"{envelope.mail_from} -> {', '.join(envelope.rcpt_tos)}: {subject!s} ({path.name})"
        )
        return "250 OK: stored"
