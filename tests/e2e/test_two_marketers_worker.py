"""End to end: two marketers send at once through a real Celery beat and worker.

Alice sends 6,000 messages on an account with no practical limit; once her campaign is well under
way, Bob sends 10 on his own account. Before the fair share, the dispatcher's first tick queued all of
Alice's rows in the workers' one queue and Bob's first message waited for every one of them. Now an
account holds queued about one dispatch interval of what it sends, so Bob's batch goes in behind at
most that much of Alice's: the SMTP server (one for both, so its arrival order is the truth) receives
all of Bob's messages while most of Alice's are still to come.

The server takes 5 ms a message, so Alice's rate is bounded by the server, not by this machine's
speed: the race has the same shape on a fast machine and a loaded one.

Select with `-m e2e`; needs DATABASE_URL (PostgreSQL) and REDIS_URL.
"""

import asyncio
import io
import time
from collections import Counter
from dataclasses import dataclass

import pytest
from django.core.management import call_command
from django.utils import timezone

from campaigns.models import Campaign, Email
from campaigns.services import lifecycle
from contacts.models import Contact
from tests.e2e.test_worker_sends_campaign import (  # noqa: F401  (fixtures)
    campaign_status,
    celery_cluster,
    e2e_broker_url,
    email_status_counts,
    quiet_smtp_log,
)
from tests.factories import CampaignFactory, ContactFactory, ContactListFactory, MarketerFactory, SmtpAccountFactory
from tests.smtp_server import RecordingHandler, smtp_server_factory  # noqa: F401  (fixture)

pytestmark = [pytest.mark.e2e, pytest.mark.redis]

ALICE_RECIPIENTS = 6000
BOB_RECIPIENTS = 10
BOB_AFTER_ALICE_SENT = 500  # Bob's "send now" once this many of Alice's were accepted
DEADLINE_SECONDS = 180
UNLIMITED = 10**7


@dataclass
class SlowHandler(RecordingHandler):
    """A server that takes `delay` seconds to accept each message (connections served concurrently)."""

    delay: float = 0.005

    async def handle_DATA(self, server, session, envelope):
        await asyncio.sleep(self.delay)
        return await super().handle_DATA(server, session, envelope)


def marketer_sending(name, size, port):
    owner = MarketerFactory(username=name)
    account = SmtpAccountFactory(
        owner=owner,
        host="127.0.0.1",
        port=port,
        security="none",
        username="",
        max_per_minute=UNLIMITED,
        max_per_hour=UNLIMITED,
        max_per_day=UNLIMITED,
        batch_size=50,
    )
    contacts = Contact.objects.bulk_create(
        ContactFactory.build(owner=owner, email=f"{name}-{i}@example.com") for i in range(size)
    )
    campaign = CampaignFactory(
        owner=owner, smtp_account=account, lists=[ContactListFactory(owner=owner, contacts=contacts)]
    )
    return campaign, {contact.email for contact in contacts}


def sent_count(campaign):
    return Email.objects.filter(campaign=campaign, status=Email.Status.SENT).count()


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_bobs_small_campaign_is_sent_while_alices_large_one_still_runs(
    quiet_smtp_log, smtp_server_factory, celery_cluster, settings
):
    settings.DISPATCH_INTERVAL_SECONDS = 1  # what setup_schedules, run here, stores for beat
    handler = SlowHandler()
    server = smtp_server_factory(handler)
    alice, alice_addresses = marketer_sending("alice", ALICE_RECIPIENTS, server.port)
    bob, bob_addresses = marketer_sending("bob", BOB_RECIPIENTS, server.port)
    call_command("setup_schedules", stdout=io.StringIO())

    celery_cluster.start()
    lifecycle.send_now(campaign=alice, now=timezone.now())
    celery_cluster.wait_for(
        lambda: sent_count(alice) >= BOB_AFTER_ALICE_SENT,
        timeout=DEADLINE_SECONDS,
        describe=lambda: f"Alice's campaign {campaign_status(alice.pk)}, emails {email_status_counts(alice.pk)}",
    )
    bob_sent_now = time.monotonic()
    lifecycle.send_now(campaign=bob, now=timezone.now())
    handler.wait_for(lambda h: bob_addresses <= set(h.delivered_to()), timeout=DEADLINE_SECONDS)
    bob_took = time.monotonic() - bob_sent_now
    celery_cluster.wait_for(
        lambda: {campaign_status(alice.pk), campaign_status(bob.pk)} == {Campaign.Status.COMPLETED},
        timeout=DEADLINE_SECONDS,
        describe=lambda: f"Alice {email_status_counts(alice.pk)}, Bob {email_status_counts(bob.pk)}",
    )
    celery_cluster.stop()  # a warm shutdown: a late duplicate would arrive now, before the counting

    arrivals = handler.delivered_to()
    received = Counter(arrivals)
    assert set(received) == alice_addresses | bob_addresses
    assert [address for address, n in received.items() if n != 1] == []
    for campaign in (alice, bob):
        assert set(Email.objects.filter(campaign=campaign).values_list("status", "attempts")) == {
            (Email.Status.SENT, 1)
        }

    # Bob's last message arrived behind at most the fair share of Alice's, not behind all of them:
    # when it arrived, more than half of Alice's messages were still to come.
    bobs_last = max(arrivals.index(address) for address in bob_addresses)
    alice_before_bobs_last = sum(1 for address in arrivals[:bobs_last] if address in alice_addresses)
    print(
        f"\nBob's {BOB_RECIPIENTS} accepted {bob_took:.1f} s after his send now, behind "
        f"{alice_before_bobs_last} of Alice's {ALICE_RECIPIENTS}"
    )
    assert alice_before_bobs_last < ALICE_RECIPIENTS // 2
    assert bob_took < 15  # the goal for his first message; here his last
