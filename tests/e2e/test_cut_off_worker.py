"""End to end: a worker on a second host is cut off mid-send, then comes back.

Beat and a worker run on this host; a second worker runs in a network namespace (tests/netns.py)
reaching PostgreSQL, Redis and the SMTP server over a veth link. At 30 % delivered the second
host is cut off for longer than a lease (the whole link, or only its database and broker), then
healed. The lease fence (campaigns/lease.py) must hold: nothing lost or stuck, no row
sent by its old holder once another may have it, and duplicates only where a message was in
flight at the cut (one per open SMTP connection of the cut-off worker), each flagged.

Select with `-m e2e`; needs root, iproute2, DATABASE_URL (PostgreSQL) and REDIS_URL.
"""

import asyncio
import io
import re
import sys
import time
from collections import Counter
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from django.core.management import call_command
from django.db import connection
from django.utils import timezone

from campaigns.models import Campaign, Email
from campaigns.services import lifecycle
from contacts.models import Contact
from tests import netns
from tests.conftest import need_service
from tests.e2e.test_worker_sends_campaign import (  # noqa: F401  (fixtures)
    CeleryProcess,
    campaign_status,
    celery_cluster,
    e2e_broker_url,
    email_status_counts,
    quiet_smtp_log,
)
from tests.factories import CampaignFactory, ContactFactory, ContactListFactory, MarketerFactory, SmtpAccountFactory
from tests.smtp_server import RecordingHandler, smtp_server_factory  # noqa: F401  (fixtures)

pytestmark = [pytest.mark.e2e, pytest.mark.redis]

CELERY = str(Path(sys.executable).with_name("celery"))
RECIPIENTS = 2000
CONCURRENCY = 2  # the cut-off worker's processes: each holds at most one SMTP connection
# A short lease, so the cut outlasts it quickly: a worker may begin a send for 30 - (5 + 1) = 24 s
# after a renewal, and a row is taken back 6 s after its lease ends.
FENCE = {
    "EMAIL_LEASE_SECONDS": 30,
    "SMTP_TIMEOUT": 5,
    "EMAIL_LEASE_CLOCK_SKEW_SECONDS": 1,
    "DISPATCH_INTERVAL_SECONDS": 1,
}
CUT_SECONDS = 45  # past a lease, its margin and a few ticks: the other worker sends the rows taken back
DEADLINE_SECONDS = 240
TASK_LINE = re.compile(r"Task campaigns\.send_batch\[([0-9a-f-]+)\] (received|succeeded|raised|failed)")


class SlowHandler(RecordingHandler):
    """A server that takes 18 ms over each message, as a real one does."""

    async def handle_DATA(self, server, session, envelope):
        await asyncio.sleep(0.018)
        return await super().handle_DATA(server, session, envelope)


@pytest.fixture
def second_host():
    why_not = netns.available()
    if why_not:
        need_service(why_not)
    host = netns.SecondHost().start()
    yield host
    host.stop()


def database_url_through(host):
    """This test's database, reached from the second host through a relay on the link."""
    db = connection.settings_dict
    port = host.relay(db["HOST"] or "127.0.0.1", int(db["PORT"] or 5432))
    user = f"{db['USER']}@" if db["USER"] else ""
    return f"postgres://{user}{host.host_address}:{port}/{db['NAME']}?application_name={{}}"


def broker_url_through(host, broker_url):
    parts = urlsplit(broker_url)
    port = host.relay(parts.hostname or "127.0.0.1", parts.port or 6379)
    return parts._replace(netloc=f"{host.host_address}:{port}").geturl()


def tasks_in_hand(log_text):
    """send_batch tasks the worker received and has not finished."""
    open_tasks = set()
    for task_id, event in TASK_LINE.findall(log_text):
        (open_tasks.add if event == "received" else open_tasks.discard)(task_id)
    return open_tasks


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
@pytest.mark.parametrize("cut", ["link", "database-and-broker"])
def test_a_worker_cut_off_mid_send_sends_nothing_it_no_longer_holds(
    cut, quiet_smtp_log, smtp_server_factory, celery_cluster, second_host, e2e_broker_url, tmp_path, settings
):
    settings.DISPATCH_INTERVAL_SECONDS = FENCE["DISPATCH_INTERVAL_SECONDS"]  # what setup_schedules stores for beat
    handler = SlowHandler()
    # On this side of the link: this host's worker reaches it directly, the second host over the link.
    server = smtp_server_factory(handler, host=second_host.host_address)
    owner = MarketerFactory(username="e2e-cut")
    account = SmtpAccountFactory(
        owner=owner,
        host=second_host.host_address,
        port=server.port,
        security="none",
        username="",
        max_per_minute=1_000_000,
        max_per_hour=1_000_000,
        max_per_day=1_000_000,
        batch_size=50,
    )
    contacts = Contact.objects.bulk_create(ContactFactory.build_batch(RECIPIENTS, owner=owner))
    expected = {contact.email.lower() for contact in contacts}
    campaign = CampaignFactory(
        owner=owner, smtp_account=account, lists=[ContactListFactory(owner=owner, contacts=contacts)]
    )
    call_command("setup_schedules", stdout=io.StringIO())

    far_env = celery_cluster.environment(FENCE)
    far_env.update(
        DATABASE_URL=database_url_through(second_host).format(celery_cluster.application_name),
        REDIS_URL=broker_url_through(second_host, e2e_broker_url),
    )
    far_worker = CeleryProcess(
        "worker on the second host",
        second_host.run_there(
            [
                CELERY,
                "-A",
                "config",
                "worker",
                "--concurrency",
                str(CONCURRENCY),
                "--pool",
                "prefork",
                "-l",
                "INFO",
                "-n",
                f"far-{celery_cluster.application_name}@%h",
            ]
        ),
        env=far_env,
        cwd=tmp_path,
        log_path=tmp_path / "far-worker.log",
    )
    celery_cluster.processes.append(far_worker)
    celery_cluster.wait_for(
        lambda: " ready." in far_worker.log_text(),
        timeout=60,
        describe=lambda: f"the far worker did not start:\n{far_worker.log_text()[-3000:]}",
    )

    lifecycle.send_now(campaign=campaign, now=timezone.now())
    celery_cluster.start(**FENCE)
    celery_cluster.wait_for(
        lambda: len(handler.messages) >= RECIPIENTS * 0.3 and tasks_in_hand(far_worker.log_text()),
        timeout=DEADLINE_SECONDS,
        describe=lambda: f"{len(handler.messages)} delivered, emails {email_status_counts(campaign.pk)}",
    )
    cut_at = len(handler.messages)
    if cut == "link":
        second_host.cut()
    else:
        second_host.pause_relays()
    time.sleep(CUT_SECONDS)
    if cut == "link":
        second_host.heal()
    else:
        second_host.resume_relays()
    healed_at = len(handler.messages)

    def done():
        return campaign_status(campaign.pk) == Campaign.Status.COMPLETED and not tasks_in_hand(far_worker.log_text())

    celery_cluster.wait_for(
        done,
        timeout=DEADLINE_SECONDS,
        describe=lambda: (
            f"campaign {campaign_status(campaign.pk)}, emails {email_status_counts(campaign.pk)}, "
            f"far worker holds {tasks_in_hand(far_worker.log_text())}"
        ),
    )
    # Stopped before counting: a warm shutdown finishes what a worker holds, so a late copy
    # would arrive now, not after the assertions.
    celery_cluster.stop()

    received = Counter(address.lower() for message in handler.messages for address in message.rcpt_tos)
    duplicates = {address: n for address, n in received.items() if n > 1}
    rows = {row.to_email.lower(): row for row in Email.objects.filter(campaign=campaign)}
    far_log = far_worker.log_text()
    print(
        f"\n{cut}: cut at {cut_at} delivered, {healed_at} at the heal, {len(handler.messages)} in all; "
        f"duplicates {duplicates}; flagged {sorted(a for a, r in rows.items() if r.possible_duplicate)}; "
        f"the far worker sent {len(re.findall(r'succeeded', far_log))} task(s), "
        f"{far_log.count('not sent')} send(s) refused by the fence"
    )

    assert set(received) == expected  # nothing lost
    assert {row.status for row in rows.values()} == {Email.Status.SENT}  # nothing stuck
    assert sum(n - 1 for n in duplicates.values()) <= CONCURRENCY  # one per open connection at most
    assert all(n == 2 for n in duplicates.values())  # never a third copy
    assert all(rows[address].possible_duplicate for address in duplicates)  # each one flagged
    assert Campaign.objects.get(pk=campaign.pk).status == Campaign.Status.COMPLETED
