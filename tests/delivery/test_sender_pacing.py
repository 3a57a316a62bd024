"""Pacing: long waits continue later, slots reserved mid-batch, each result committed before the
next message (a real aiosmtpd server, time driven by the test's clock).
"""

import pytest

from campaigns.models import Email
from tests.smtp_server import RecordingHandler

S = Email.Status
OK = "250 2.0.0 OK: queued"  # what RecordingHandler answers to an accepted DATA


def test_a_long_pacing_wait_frees_the_worker_and_the_batch_continues_when_its_slot_comes(make_engine):
    from delivery import sender as sender_module

    engine = make_engine(max_per_minute=15)  # a slot every 4 s
    addresses = ["a@example.org", "b@example.org", "c@example.org"]
    campaign = engine.campaign(engine.contact_list(*addresses))
    engine.send_now(campaign)
    continuations = []

    def run(batch_id):
        sender_module.send_batch(
            batch_id,
            clock=engine.clock,
            sleep=engine.sleep,
            continue_later=lambda next_id, delay: continuations.append((next_id, delay)),
        )

    engine.tick(enqueue=run)
    assert engine.handler.delivered_to() == addresses[:1]
    assert engine.sleep.waits == []  # the worker never slept through the 4 s
    next_id, delay = continuations[-1]
    assert delay == pytest.approx(4.0)
    # The rest stay claimed (no other worker or tick takes them), unspent.
    rest = [engine.email(campaign, a) for a in addresses[1:]]
    assert {(e.status, e.batch_id, e.attempts) for e in rest} == {(S.QUEUED, next_id, 0)}
    assert engine.tick().claimed == 0

    for _ in addresses[1:]:
        engine.clock.advance(seconds=4)
        run(continuations[-1][0])
    assert engine.handler.delivered_to() == addresses
    assert set(engine.statuses(campaign).values()) == {S.SENT}
    assert engine.sleep.waits == []


# --- each result is recorded before the next message goes out ----------------------------------


class _LedgerWatchingHandler(RecordingHandler):
    """At each DATA, reads in its own database connection how many of the campaign's rows are sent."""

    def __post_init__(self):
        super().__post_init__()
        self.sent_rows_seen_at_data = []

    async def handle_DATA(self, server, session, envelope):
        from asgiref.sync import sync_to_async
        from django.db import connection

        def sent_rows():
            try:
                return Email.objects.filter(status=S.SENT).count()
            finally:
                connection.close()

        self.sent_rows_seen_at_data.append(await sync_to_async(sent_rows, thread_sensitive=False)())
        return await super().handle_DATA(server, session, envelope)


# serialized_rollback: the Marketers group and the lock row come from data migrations.
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_each_result_is_committed_before_the_next_message_is_delivered(make_engine):
    # The sender writes a result without waiting for its answer and builds the next message
    # meanwhile; the answer is read before the next message's content is sent. Seen from another
    # connection, message n is delivered only once the n-1 before it are recorded sent.
    handler = _LedgerWatchingHandler()
    engine = make_engine(handler)
    addresses = [f"r{i}@example.org" for i in range(5)]
    campaign = engine.campaign(engine.contact_list(*addresses))
    engine.send_now(campaign)

    engine.tick()

    assert handler.sent_rows_seen_at_data == [0, 1, 2, 3, 4]
    assert all(e.status == S.SENT for e in engine.emails(campaign).values())


# Outside a test transaction, as in a worker: there the reservation's transaction really begins.
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_pacing_slots_reserved_in_the_middle_of_a_batch_after_a_result_still_send_the_batch(make_engine, settings):
    # 120 a minute: slots are reserved two at a time (a second's worth), so a new reservation,
    # in its own transaction, follows a result whose answer is still to be read. (Waits are
    # recorded, not slept, and the test's clock stands still: allow them all in this batch.)
    settings.MAX_PACING_WAIT_SECONDS = 3600
    engine = make_engine(max_per_minute=120)
    addresses = [f"r{i}@example.org" for i in range(6)]
    campaign = engine.campaign(engine.contact_list(*addresses))
    engine.send_now(campaign)

    engine.tick()

    assert sorted(engine.handler.delivered_to()) == addresses
    assert all(e.status == S.SENT for e in engine.emails(campaign).values())
    assert engine.reports[0].sent == 6 and engine.reports[0].connections == 1


def test_without_a_way_to_continue_later_a_far_slot_hands_the_rest_back(make_engine, settings):
    settings.MAX_PACING_WAIT_SECONDS = 0.5
    engine = make_engine(max_per_minute=60)  # a slot every second, more than the 0.5 s a sender sleeps
    addresses = [f"r{i}@example.org" for i in range(3)]
    campaign, (batch_id,) = engine.claimed_campaign(addresses)

    report = engine.send_batch(batch_id)

    assert report.sent == 1 and report.released == 2
    assert sorted(e.status for e in engine.emails(campaign).values()) == [S.PENDING, S.PENDING, S.SENT]
