"""Shared pieces for the sending-engine tests: a controllable clock, a recording sleep,
and an `engine` bundling a real aiosmtpd server, an SMTP account pointing at it and
helpers that run dispatcher ticks whose batches are sent in the test process."""

from dataclasses import dataclass, field
from datetime import timedelta

import pytest
from django.utils import timezone

from campaigns.models import Email
from campaigns.services import lifecycle
from delivery import dispatcher, sender
from tests.factories import CampaignFactory, ContactFactory, ContactListFactory, SmtpAccountFactory
from tests.smtp_server import RecordingHandler


class Clock:
    """A clock the test moves by hand: pass it as `clock=` and its value as `now=`."""

    def __init__(self, start=None):
        self.now = start or timezone.now()

    def __call__(self):
        return self.now

    def advance(self, **delta):
        self.now += timedelta(**delta)
        return self.now

    def monotonic(self):
        """The same time as a monotonic clock reads it (the lease's clock: pass it as `monotonic=`)."""
        return self.now.timestamp()


class RecordingSleep:
    """Records pacing waits instead of sleeping; `hook(n)` runs at the n-th wait (1-based)."""

    def __init__(self):
        self.waits = []
        self.hooks = {}

    def at(self, n, fn):
        self.hooks[n] = fn

    def __call__(self, seconds):
        self.waits.append(seconds)
        hook = self.hooks.get(len(self.waits))
        if hook is not None:
            hook()


@dataclass
class Engine:
    server: object
    account: object
    owner: object
    clock: Clock
    sleep: RecordingSleep
    reports: list = field(default_factory=list)
    ticks: list = field(default_factory=list)

    @property
    def handler(self):
        return self.server.handler

    def contact_list(self, *addresses, name=None, **contact_fields):
        contacts = [
            ContactFactory(owner=self.owner, email=a, name=a.split("@")[0].title(), **contact_fields) for a in addresses
        ]
        kwargs = {"name": name} if name else {}
        return ContactListFactory(owner=self.owner, contacts=contacts, **kwargs)

    def campaign(self, *lists, **fields):
        return CampaignFactory(owner=self.owner, smtp_account=self.account, lists=list(lists), **fields)

    def send_now(self, campaign):
        return lifecycle.send_now(campaign=campaign, now=self.clock())

    def claimed_campaign(self, addresses, **fields):
        """A campaign to these addresses, started and claimed by one tick; returns it and its batch ids."""
        campaign = self.campaign(self.contact_list(*addresses), **fields)
        self.send_now(campaign)
        claimed = []
        self.tick(enqueue=claimed.append)
        return campaign, claimed

    def send_batch(self, batch_id):
        report = sender.send_batch(batch_id, clock=self.clock, sleep=self.sleep, monotonic=self.clock.monotonic)
        self.reports.append(report)
        return report

    def tick(self, enqueue=None):
        report = dispatcher.tick(now=self.clock(), enqueue=enqueue or self.send_batch)
        self.ticks.append(report)
        return report

    def emails(self, campaign):
        return {e.to_email: e for e in Email.objects.filter(campaign=campaign)}

    def email(self, campaign, address):
        return Email.objects.get(campaign=campaign, to_email=address)

    def statuses(self, campaign):
        return {e.to_email: e.status for e in Email.objects.filter(campaign=campaign)}


@pytest.fixture
def allow_local_smtp(settings):
    # The test server listens on 127.0.0.1 and an unprivileged port.
    settings.SMTP_ALLOW_PRIVATE_HOSTS = True
    settings.SMTP_CA_FILE = ""
    settings.SMTP_TIMEOUT = 5
    settings.EMAIL_RETRY_LADDER = [30, 60, 3600]
    settings.ACCOUNT_PAUSE_SECONDS = 3600
    settings.DISPATCH_INTERVAL_SECONDS = 10


@pytest.fixture(params=["stepwise", "pipelined"])
def make_engine(request, db, allow_local_smtp, smtp_server_factory, marketer):
    """make_engine(handler=None, server_kwargs=None, **account_fields) -> Engine.

    Every engine test runs twice: against a server without PIPELINING (MAIL, RCPT, DATA
    each answered before the next is sent) and one offering it (all three written at once).
    """

    def make(handler=None, *, server_kwargs=None, owner=None, **account_fields):
        handler = handler or RecordingHandler()
        handler.pipelining = request.param == "pipelined"
        server = smtp_server_factory(handler, **(server_kwargs or {}))
        owner = owner or marketer
        values = {
            "host": server.host,
            "port": server.port,
            "security": "none",
            "username": "",
            "from_email": "news@alice.example",
            "from_name": "Alice Ltd",
            # Large: pacing never holds a test up (waits are recorded, not slept, anyway).
            "max_per_minute": 6000,
            "max_per_hour": 100000,
            "max_per_day": 1000000,
        }
        values.update(account_fields)
        account = SmtpAccountFactory(owner=owner, **values)
        return Engine(server=server, account=account, owner=owner, clock=Clock(), sleep=RecordingSleep())

    return make


@pytest.fixture
def engine(make_engine):
    return make_engine()
