"""Who holds a batch: takes, second deliveries of a task, leases and their renewal, the task's time
limit (a real aiosmtpd server, time driven by the test's clock).
"""

import uuid
from datetime import timedelta

from django.conf import settings

from campaigns import lease, ledger
from campaigns.models import BatchTake, Campaign, Email
from delivery import sender
from sending.models import SmtpAccountState

S = Email.Status
OK = "250 2.0.0 OK: queued"  # what RecordingHandler answers to an accepted DATA


# --- a task delivered twice -----------------------------------------------------------------------


def test_a_batch_task_delivered_twice_sends_each_email_once(engine):
    addresses = [f"r{i}@example.org" for i in range(4)]
    campaign, (batch_id,) = engine.claimed_campaign(addresses)

    first = engine.send_batch(batch_id)
    again = sender.send_batch(
        str(batch_id), clock=engine.clock, sleep=engine.sleep, monotonic=engine.clock.monotonic
    )  # as the Celery task passes it

    assert first.sent == 4
    assert again.sent == 0 and again.connections == 0
    assert sorted(engine.handler.delivered_to()) == addresses
    assert engine.handler.connections == 1
    assert all(e.attempts == 1 for e in engine.emails(campaign).values())


def test_the_batch_sending_a_campaigns_last_rows_completes_it_without_waiting_for_a_tick(make_engine):
    engine = make_engine(batch_size=2)
    campaign, claimed = engine.claimed_campaign([f"r{i}@example.org" for i in range(3)])
    assert len(claimed) == 2

    engine.send_batch(claimed[0])
    campaign.refresh_from_db()
    assert campaign.status == Campaign.Status.SENDING  # one row still queued in the other batch

    engine.clock.advance(seconds=3)
    engine.send_batch(claimed[1])
    campaign.refresh_from_db()
    assert (campaign.status, campaign.completed_at) == (Campaign.Status.COMPLETED, engine.clock())


def test_a_second_delivery_arriving_while_the_first_is_sending_sends_nothing(engine):
    addresses = [f"r{i}@example.org" for i in range(4)]
    campaign, (batch_id,) = engine.claimed_campaign(addresses)
    again = []
    # During the pacing wait before the second message: the broker hands the task out again.
    engine.sleep.at(
        1,
        lambda: again.append(
            sender.send_batch(str(batch_id), clock=engine.clock, sleep=engine.sleep, monotonic=engine.clock.monotonic)
        ),
    )

    first = engine.send_batch(batch_id)

    assert first.sent == 4
    assert again[0].sent == 0 and again[0].connections == 0 and again[0].notes == ["batch already taken"]
    assert sorted(engine.handler.delivered_to()) == addresses


def test_a_batch_taken_late_renews_its_lease_and_sends_only_the_rows_still_its_own(engine, monkeypatch):
    """The lease is set at the claim. A batch that waited in the queue for more than half of it
    renews it before sending, and sends only the rows it renewed: one whose lease ran out and that a
    dispatcher returned to pending between the worker's read and its renewal is left to whoever has it now."""
    addresses = [f"r{i}@example.org" for i in range(3)]
    campaign, (batch_id,) = engine.claimed_campaign(addresses)
    engine.clock.advance(seconds=settings.EMAIL_LEASE_SECONDS * 0.75)
    renewals = []
    renew = ledger.renew_lease

    def returned_meanwhile_then_renew(**kwargs):
        renewals.append(kwargs["now"])
        Email.objects.filter(campaign=campaign, to_email=addresses[0]).update(
            status=S.PENDING, batch_id=None, lease_expires_at=None
        )
        return renew(**kwargs)

    monkeypatch.setattr(ledger, "renew_lease", returned_meanwhile_then_renew)
    report = engine.send_batch(batch_id)

    assert renewals == [engine.clock()]
    assert report.sent == 2 and sorted(engine.handler.delivered_to()) == addresses[1:]
    assert engine.statuses(campaign) == {addresses[0]: S.PENDING, addresses[1]: S.SENT, addresses[2]: S.SENT}


def test_a_worker_past_its_lease_stops_at_once_and_the_rows_are_sent_once_by_their_new_owner(engine):
    """A worker that outlived its lease (a long stall between two messages: here the pacing wait
    before the second one lasts past the lease, and a dispatcher tick meanwhile returns its rows to
    pending and claims them again for another worker) must send nothing more: each of those rows
    belongs to the new batch, and sending it here too would deliver it twice."""
    addresses = [f"r{i}@example.org" for i in range(4)]
    campaign, (batch_id,) = engine.claimed_campaign(addresses)
    reclaimed = []

    def stall_past_the_lease():
        engine.clock.advance(seconds=settings.EMAIL_LEASE_SECONDS + lease.margin() + 1)
        engine.tick(enqueue=reclaimed.append)

    engine.sleep.at(1, stall_past_the_lease)
    report = engine.send_batch(batch_id)

    assert engine.handler.delivered_to() == addresses[:1]
    assert report.sent == 1
    assert len(reclaimed) == 1
    assert {e.to_email: e.batch_id for e in engine.emails(campaign).values() if e.status == S.QUEUED} == {
        a: reclaimed[0] for a in addresses[1:]
    }

    engine.send_batch(reclaimed[0])

    assert sorted(engine.handler.delivered_to()) == addresses  # each exactly once
    assert set(engine.statuses(campaign).values()) == {S.SENT}


def test_a_worker_whose_renewal_finds_some_rows_gone_skips_exactly_those(engine):
    """The renewal's answer decides: a row it did not renew (no longer this worker's) is never sent,
    and the rows it renewed still are."""
    addresses = [f"r{i}@example.org" for i in range(4)]
    campaign, (batch_id,) = engine.claimed_campaign(addresses)
    # A batch goes in id order, which need not be the addresses' order: lose the third one it sends.
    third = Email.objects.filter(campaign=campaign).order_by("id")[2]
    lost = []

    def clock():
        # Once the first message is delivered: the third row is taken from the worker, and a renewal is due.
        if not lost and engine.handler.delivered_to():
            lost.append(
                Email.objects.filter(pk=third.pk, status=S.QUEUED).update(
                    status=S.PENDING, batch_id=None, lease_expires_at=None
                )
            )
            engine.clock.advance(seconds=settings.EMAIL_LEASE_SECONDS - lease.margin() - lease.renewal_window() + 1)
        return engine.clock()

    report = sender.send_batch(batch_id, clock=clock, sleep=engine.sleep, monotonic=lambda: clock().timestamp())

    assert lost == [1]
    assert sorted(engine.handler.delivered_to()) == sorted(set(addresses) - {third.to_email})
    assert report.sent == 3
    assert engine.statuses(campaign)[third.to_email] == S.PENDING


def test_a_batch_taken_early_sends_on_the_claims_lease_without_rewriting_its_rows(engine):
    addresses = [f"r{i}@example.org" for i in range(3)]
    campaign, (batch_id,) = engine.claimed_campaign(addresses)
    claimed_rows = {
        e.to_email: (e.batch_id, e.lease_expires_at, e.message_id) for e in engine.emails(campaign).values()
    }
    engine.clock.advance(seconds=settings.EMAIL_LEASE_SECONDS * 0.25)

    assert ledger.take_batch(batch_id=batch_id, now=engine.clock()) is True
    assert ledger.take_batch(batch_id=batch_id, now=engine.clock()) is False
    # Taking wrote one BatchTake row; the rows still carry the claim's batch id, lease and Message-ID.
    assert BatchTake.objects.filter(batch_id=batch_id).count() == 1
    now_rows = {e.to_email: (e.batch_id, e.lease_expires_at, e.message_id) for e in engine.emails(campaign).values()}
    assert now_rows == claimed_rows
    assert all(message_id.startswith("<") and message_id.endswith(">") for _, _, message_id in claimed_rows.values())
    assert len({message_id for _, _, message_id in claimed_rows.values()}) == 3
    report = engine.send_batch(batch_id)  # taken already (above): as a second delivery, nothing
    assert report.sent == 0 and engine.handler.delivered_to() == []


def test_a_batch_is_read_through_its_own_index_whatever_the_statistics_say(engine):
    """Statistics taken while nothing was queued made PostgreSQL read each batch through the lease
    index, every queued row filtered by batch id: 20,000 rows read per batch of a large campaign."""
    from django.db import connection

    campaign = engine.campaign(engine.contact_list(*[f"r{i}@example.org" for i in range(30)]))
    engine.send_now(campaign)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE campaigns_email")  # 30 pending rows, none queued
        cursor.execute("SET LOCAL enable_seqscan = off")  # a table this small is read whole: compare indexes
        cursor.execute("EXPLAIN " + ledger._BATCH_ROWS, [str(uuid.uuid4()), S.QUEUED])
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert "Index Scan using email_batch_queued on campaigns_email" in plan, plan


def test_takes_are_forgotten_after_a_day(engine):
    old, recent = uuid.uuid4(), uuid.uuid4()
    assert ledger.take_batch(batch_id=old, now=engine.clock() - timedelta(days=1, seconds=1))
    assert ledger.take_batch(batch_id=recent, now=engine.clock() - timedelta(hours=23))
    engine.tick()
    assert set(BatchTake.objects.values_list("batch_id", flat=True)) == {recent}


def test_a_batch_stops_when_another_batch_pauses_its_account(engine):
    addresses = [f"r{i}@example.org" for i in range(4)]
    campaign = engine.campaign(engine.contact_list(*addresses))
    engine.send_now(campaign)

    def quota_hit_elsewhere():
        SmtpAccountState.objects.filter(account_id=engine.account.pk).update(
            paused_until=engine.clock() + timedelta(hours=1), pause_reason="550 5.4.5 quota (other batch)"
        )

    engine.sleep.at(1, quota_hit_elsewhere)  # during the pacing wait before the second message
    engine.tick()

    assert engine.handler.delivered_to() == addresses[:1]
    statuses = engine.statuses(campaign)
    assert [statuses[a] for a in addresses] == [S.SENT, S.PENDING, S.PENDING, S.PENDING]
    assert all(engine.email(campaign, a).attempts == 0 for a in addresses[1:])


def test_a_batch_stopped_at_its_tasks_soft_time_limit_hands_its_unsent_rows_back_unspent(engine):
    """Celery raises SoftTimeLimitExceeded inside the task (here during a pacing wait): that is no
    row's fault, so nothing is failed or deferred; the unsent rows go back to pending at once."""
    from celery.exceptions import SoftTimeLimitExceeded

    addresses = [f"r{i}@example.org" for i in range(4)]
    campaign, (batch_id,) = engine.claimed_campaign(addresses)

    def time_is_up():
        raise SoftTimeLimitExceeded()

    engine.sleep.at(2, time_is_up)
    report = engine.send_batch(batch_id)

    assert engine.handler.delivered_to() == addresses[:2]
    assert report.released == 2 and "stopped at the task's time limit" in report.notes
    assert {a: (e.status, e.attempts) for a, e in engine.emails(campaign).items()} == {
        addresses[0]: (S.SENT, 1),
        addresses[1]: (S.SENT, 1),
        addresses[2]: (S.PENDING, 0),
        addresses[3]: (S.PENDING, 0),
    }
