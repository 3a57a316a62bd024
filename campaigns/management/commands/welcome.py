import signal
import socket
import threading
import time
import urllib.error
import urllib.request

from django.conf import settings
from django.core.management.base import BaseCommand
from django.db import connections
from django.urls import reverse

from accounts import selectors as account_selectors
from accounts.models import User
from campaigns.management.commands.setup_demo import DEMO_USERNAME, RESET_HINT, password_file, remembered_password

POLL_SECONDS = 0.5
RULE = "─" * 72


# Straight to 127.0.0.1, whatever http_proxy the environment names.
_direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def answers_http(url):
    try:
        with _direct.open(url, timeout=5) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def accepts_connections(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            return True
    except OSError:
        return False


class Command(BaseCommand):
    help = (
        "The last thing `make run` prints (the Procfile's `welcome` process): once the login page answers and "
        "the SMTP sink listens, where to log in, the demo marketer's password and how to get a superuser. "
        "Then it waits for Ctrl-C, since honcho stops every process when one ends."
    )

    def handle(self, *args, **options):
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *a: stop.set())
        signal.signal(signal.SIGINT, lambda *a: stop.set())
        login_url = f"http://127.0.0.1:{settings.WEB_PORT}{reverse('admin:login')}"
        while not stop.is_set() and not (answers_http(login_url) and accepts_connections(settings.SINK_PORT)):
            time.sleep(POLL_SECONDS)
        if not stop.is_set():
            for line in self.banner():
                self.stdout.write(line)
            self.stdout.flush()  # under honcho stdout is a pipe, which Python block-buffers
        connections.close_all()  # nothing more to read: hold no connection while waiting for Ctrl-C
        stop.wait()

    def banner(self):
        site = f"{settings.SITE_URL}/admin/"
        lines = [RULE, f"Campaign Manager is ready: {site}"]
        demo = User.objects.filter(username=DEMO_USERNAME).first()
        if demo is not None:
            password = remembered_password(demo)
            if password:
                lines += [f"  demo marketer   {DEMO_USERNAME} / {password}   (kept in {password_file()})"]
            else:
                lines += [f"  demo marketer   {DEMO_USERNAME} / changed since it was generated (reset: {RESET_HINT})"]
        if account_selectors.has_approver():
            lines += ["  administrator   log in as your superuser to approve sign-ups (Users › Waiting for approval)"]
        else:
            lines += [
                "  administrator   none yet; sign-ups wait for one to approve them. Create one in another",
                "                  terminal: make superuser ADMIN_EMAIL=you@example.com",
            ]
        lines += [
            f"  mail sent       {settings.SMTP_SINK_DIR}/ (the SMTP sink on 127.0.0.1:{settings.SINK_PORT})",
            "  read more       README.md; docs/guide.md (marketers), docs/operations.md (operators)",
            "  Ctrl-C stops everything.",
            RULE,
        ]
        return lines
