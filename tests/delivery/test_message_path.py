"""One message's path, from its claim to the SMTP server's reply to its recorded open, stays short:
the project modules it runs through, and the times it crosses from one app into another, are counted
by tracing a real send (a tick's claim, the batch task over SMTP to a local server, the open pixel
fetched from the message received) and held to the bounds docs/architecture.md states."""

import re
import sys
from email import message_from_bytes
from urllib.parse import urlsplit

from tracking.models import Event

APPS = ("accounts", "sending", "contacts", "campaigns", "tracking", "bounces", "delivery", "reporting", "privacy")
# A ratchet, not the goal: today's path runs through 23 modules with 15 app crossings (the goal is 10
# and 2; docs/architecture.md, "Map of the code"). The bounds leave room for a lease renewal or a
# continuation on a slow machine; lower them as the path gets shorter, never raise them.
MAX_MODULES = 25
MAX_APP_CROSSINGS = 17
READER = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120 Safari/537.36"


class ModuleTrace:
    """The project modules whose functions run, in the order they are first entered, and every app switch."""

    def __init__(self):
        self.modules, self.apps = [], []

    def __enter__(self):
        sys.setprofile(self._on_event)
        return self

    def __exit__(self, *exc):
        sys.setprofile(None)

    def crossings(self):
        """App changes along the path's modules, in the order it first enters them."""
        apps = [module.split(".")[0] for module in self.modules]
        return sum(1 for before, after in zip(apps, apps[1:], strict=False) if before != after)

    def _on_event(self, frame, event, arg):
        if event != "call" or frame.f_code.co_name == "<module>":
            return
        module = frame.f_globals.get("__name__", "")
        app = module.split(".")[0]
        if app not in APPS or ".migrations." in module:
            return
        if module not in self.modules:
            self.modules.append(module)
        if not self.apps or self.apps[-1] != app:
            self.apps.append(app)


def open_pixel_path(raw_message):
    html = next(
        part.get_payload(decode=True).decode()
        for part in message_from_bytes(raw_message).walk()
        if part.get_content_type() == "text/html"
    )
    return urlsplit(re.search(r'<img[^>]+src="([^"]+/t/o/[^"]+)"', html).group(1)).path


def test_one_message_from_claim_to_open_runs_through_few_modules_and_apps(db, engine, client):
    from delivery import tasks

    def started(address):
        campaign = engine.campaign(engine.contact_list(address))
        engine.send_now(campaign)
        return campaign

    def claim_send_and_open(campaign, address):
        batches = []
        engine.tick(enqueue=batches.append)
        tasks.send_batch(str(batches[0]))
        received = next(m for m in engine.handler.messages if address in m.rcpt_tos)
        assert client.get(open_pixel_path(received.content), HTTP_USER_AGENT=READER).status_code == 200
        email = engine.emails(campaign)[address]
        assert Event.objects.filter(email=email, kind=Event.Kind.OPEN).count() == 1

    claim_send_and_open(started("first@example.org"), "first@example.org")  # as it runs once the process is warm
    campaign = started("ann@example.org")
    with ModuleTrace() as trace:
        claim_send_and_open(campaign, "ann@example.org")

    crossings = trace.crossings()
    print(f"\n{len(trace.modules)} modules, {crossings} app crossings")
    print("\n".join(trace.modules))
    assert len(trace.modules) <= MAX_MODULES, trace.modules
    assert crossings <= MAX_APP_CROSSINGS, trace.apps
