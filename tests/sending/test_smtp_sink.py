"""The smtp_sink process, as Procfile runs it."""

import os
import queue
import smtplib
import subprocess
import sys
import threading
import time
from email.message import EmailMessage
from pathlib import Path

import pytest

from tests.conftest import free_port

PROJECT_ROOT = Path(__file__).resolve().parents[2]


class LineReader:
    """Collects a process's output lines in a thread, so the test can wait on them with a deadline."""

    def __init__(self, stream):
        self.lines = queue.Queue()
        self.seen = []
        self._thread = threading.Thread(target=self._pump, args=(stream,), daemon=True)
        self._thread.start()

    def _pump(self, stream):
        for line in iter(stream.readline, ""):
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def wait_for(self, predicate, timeout):
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError(f"no matching line within {timeout}s; seen: {self.seen}")
            try:
                line = self.lines.get(timeout=remaining)
            except queue.Empty:
                continue
            if line is None:
                raise AssertionError(f"the process closed its output; seen: {self.seen}")
            self.seen.append(line)
            if predicate(line):
                return line


def wait_until(condition, timeout, message):
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(message)
        time.sleep(0.05)


@pytest.fixture
def sink_env(tmp_path):
    env = dict(os.environ)
    # Under honcho the output is a pipe, not a terminal: do not rely on unbuffered mode.
    env.pop("PYTHONUNBUFFERED", None)
    env["VAR_DIR"] = str(tmp_path / "var")
    env.pop("DJANGO_ENV", None)
    return env


def test_smtp_sink_process_stores_and_reports_each_message(tmp_path, sink_env):
    port = free_port()
    folder = tmp_path / "sink"
    process = subprocess.Popen(
        [sys.executable, "manage.py", "smtp_sink", "--port", str(port), "--dir", str(folder)],
        cwd=PROJECT_ROOT,
        env=sink_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        reader = LineReader(process.stdout)
        reader.wait_for(lambda line: "listening" in line and str(port) in line, timeout=30)

        message = EmailMessage()
        message["From"] = "demo@example.com"
        message["To"] = "asha.rao@example.com"
        message["Subject"] = "Sink check"
        message.set_content("Hello from the test.")
        with smtplib.SMTP("127.0.0.1", port, timeout=10) as smtp:
            refused = smtp.send_message(message)
        assert refused == {}

        wait_until(lambda: list(folder.glob("*.eml")), timeout=10, message="no .eml file appeared")
        [stored] = list(folder.glob("*.eml"))
        assert b"Subject: Sink check" in stored.read_bytes()
        assert b"Hello from the test." in stored.read_bytes()

        line = reader.wait_for(lambda line: "Sink check" in line, timeout=10)
        assert "demo@example.com -> asha.rao@example.com" in line
        assert stored.name in line

        process.terminate()  # SIGTERM, as honcho sends on shutdown
        assert process.wait(timeout=15) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)
        process.stdout.close()
