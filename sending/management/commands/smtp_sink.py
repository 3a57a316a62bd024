import logging
import signal
import threading
from argparse import ArgumentParser
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from django.conf import settings
from django.core.management.base import BaseCommand

from sending.sink import SinkHandler


class Command(BaseCommand):
    help = "A development SMTP server: stores every message it receives as an .eml file and prints one line each."

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=1025)
        parser.add_argument("--dir", default=str(settings.SMTP_SINK_DIR), help="Where the .eml files go.")

    def handle(self, *args: Any, host: str, port: int, dir: str, **options: Any) -> None:
        # aiosmtpd logs every SMTP command at INFO; one line per message is what we want.
        logging.getLogger("mail.log").setLevel(logging.WARNING)
        folder = Path(dir)
        folder.mkdir(parents=True, exist_ok=True)
        handler = SinkHandler(folder, on_message=self._say)
        controller = Controller(handler, hostname=host, port=port)
        controller.start()
        self._say(f"SMTP sink listening on {host}:{port}, storing messages in {folder}")
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *a: stop.set())
        signal.signal(signal.SIGINT, lambda *a: stop.set())
        try:
            stop.wait()
        finally:
            controller.stop()

    def _say(self, line: str) -> None:
        # Under honcho (Procfile) stdout is a pipe, which Python block-buffers:
        # without a flush the lines would show up only when the buffer fills or the sink stops.
        self.stdout.write(line)
        self.stdout.flush()
