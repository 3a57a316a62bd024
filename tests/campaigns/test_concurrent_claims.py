"""Claims from two threads at once never take the same email (PostgreSQL: SELECT ... FOR UPDATE SKIP LOCKED).

Each thread has its own database connection (Django connections are per thread)
and closes it when done; the rows are committed first (transactional test).
"""

import threading
from collections import Counter
from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.utils import timezone

from campaigns import ledger
from campaigns.models import Campaign, Email
from delivery import dispatcher
from tests.factories import CampaignFactory, MarketerFactory, SmtpAccountFactory

pytestmark = [
    # serialized_rollback: an earlier transactional test's flush removes rows that
    # migrations made (the Marketers group, the dispatcher's lock row); this restores them.
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]

ROWS = 2000
MAX_ROUNDS = 2000  # a safety stop for the loops below, far above what they need


def pending_campaign(rows=ROWS, **account_fields):
    owner = MarketerFactory(username="claims")
    account = SmtpAccountFactory(owner=owner, **account_fields)
    campaign = CampaignFactory(
        owner=owner, smtp_account=account, status=Campaign.Status.SENDING, started_at=timezone.now()
    )
    Email.objects.bulk_create(
        [Email(campaign=campaign, to_email=f"r{i}@example.org", status=Email.Status.PENDING) for i in range(rows)],
        batch_size=1000,
    )
    return campaign


def pending_left(campaign):
    return Email.objects.filter(campaign=campaign, status=Email.Status.PENDING).exists()


def run_together(worker, count=2):
    """Start `count` threads on worker(index) at the same moment; re-raise the first error."""
    barrier = threading.Barrier(count)
    errors = []

    def run(index):
        try:
            barrier.wait(timeout=10)
            worker(index)
        except BaseException as exc:  # noqa: BLE001  (reported in the test thread)
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i,), name=f"claimer-{i}") for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(t.is_alive() for t in threads), "a claiming thread did not finish"
    if errors:
        raise errors[0]


def test_two_threads_claiming_the_same_rows_never_claim_an_email_twice():
    campaign = pending_campaign()
    all_ids = set(Email.objects.filter(campaign=campaign).values_list("id", flat=True))
    claimed = {0: [], 1: []}
    now = timezone.now()

    def worker(index):
        for _ in range(MAX_ROUNDS):
            batch_id, count, _ = ledger.claim(campaign_ids=[campaign.pk], limit=25, now=now)
            if count:
                ids = list(Email.objects.filter(batch_id=batch_id).values_list("id", flat=True))
                assert len(ids) == count
                claimed[index].extend(ids)
            elif not pending_left(campaign):
                return  # nothing left (an empty claim with rows left means the other thread holds them)
        raise AssertionError("claiming did not finish")

    run_together(worker)

    every_claim = claimed[0] + claimed[1]
    duplicates = [i for i, n in Counter(every_claim).items() if n > 1]
    assert duplicates == []
    assert set(every_claim) == all_ids and len(every_claim) == ROWS
    assert claimed[0] and claimed[1], "both threads should have claimed a share"
    assert not Email.objects.filter(campaign=campaign).exclude(status=Email.Status.QUEUED).exists()


def test_a_claim_skips_rows_another_transaction_has_locked_instead_of_waiting():
    campaign = pending_campaign(rows=100)
    locked = threading.Event()
    finish = threading.Event()
    held = []

    def holder(index):
        # A dispatcher in the middle of its claim: rows locked, transaction not yet committed.
        with transaction.atomic():
            held.extend(
                Email.objects.filter(campaign=campaign, status=Email.Status.PENDING)
                .order_by("id")
                .select_for_update(skip_locked=True)
                .values_list("id", flat=True)[:40]
            )
            locked.set()
            assert finish.wait(timeout=30)

    thread = threading.Thread(target=lambda: _closing(holder, 0))
    thread.start()
    try:
        assert locked.wait(timeout=10)
        with connection.cursor() as cursor:
            # Blocking on the holder's locks would fail this claim instead of hanging the test.
            cursor.execute("SET lock_timeout = '2s'")
        batch_id, count, _ = ledger.claim(campaign_ids=[campaign.pk], limit=50, now=timezone.now())
    finally:
        finish.set()
        thread.join(timeout=30)
        with connection.cursor() as cursor:
            cursor.execute("SET lock_timeout = 0")

    mine = set(Email.objects.filter(batch_id=batch_id).values_list("id", flat=True))
    assert count == 50 and len(mine) == 50
    assert mine.isdisjoint(held) and len(held) == 40


def _closing(fn, *args):
    try:
        fn(*args)
    finally:
        connection.close()


def test_two_dispatcher_ticks_at_once_never_claim_an_email_twice():
    # 3,000 a minute: each tick may claim 500 (a 10 s window), in batches of 100.
    campaign = pending_campaign(max_per_minute=3000, max_per_hour=100000, max_per_day=1000000, batch_size=100)
    all_ids = set(Email.objects.filter(campaign=campaign).values_list("id", flat=True))
    claimed = {0: [], 1: []}
    ran = {0: 0, 1: 0}

    def worker(index):
        def send(batch_id):
            # Stands in for a worker: record the batch, then mark it sent long enough ago
            # that it no longer counts against the windows, so the next tick claims again.
            ids = list(Email.objects.filter(batch_id=batch_id).values_list("id", flat=True))
            claimed[index].extend(ids)
            Email.objects.filter(batch_id=batch_id, status=Email.Status.QUEUED).update(
                status=Email.Status.SENT, sent_at=timezone.now() - timedelta(days=2), batch_id=None
            )

        for _ in range(MAX_ROUNDS):
            report = dispatcher.tick(enqueue=send)
            ran[index] += report.ran
            if report.ran and not report.claimed and not pending_left(campaign):
                return
        raise AssertionError("ticks did not finish")

    run_together(worker)

    every_claim = claimed[0] + claimed[1]
    assert [i for i, n in Counter(every_claim).items() if n > 1] == []
    assert set(every_claim) == all_ids and len(every_claim) == ROWS
    assert ran[0] and ran[1]
    campaign.refresh_from_db()
    assert campaign.status == Campaign.Status.COMPLETED
