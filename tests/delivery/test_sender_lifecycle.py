"""The batch sender and the campaign's lifecycle: pause, cancel and the owner's access, mid-batch
and between batches (a real aiosmtpd server, time driven by the test's clock).
"""

from datetime import timedelta

import pytest
from django.utils import timezone

from campaigns import ledger
from campaigns.models import Campaign, Email
from campaigns.services import lifecycle
from delivery import sender

S = Email.Status
OK = "250 2.0.0 OK: queued"  # what RecordingHandler answers to an accepted DATA


# --- pause and cancel mid-way ---------------------------------------------------------------------


def test_cancel_mid_batch_leaves_the_unsent_rows_cancelled_and_never_sends_them(engine):
    addresses = [f"r{i}@example.org" for i in range(5)]
    campaign = engine.campaign(engine.contact_list(*addresses))
    engine.send_now(campaign)
    # Cancelled while the sender waits its pacing turn before the third message.
    engine.sleep.at(2, lambda: lifecycle.cancel(campaign=campaign, now=engine.clock()))

    engine.tick()

    assert engine.handler.delivered_to() == addresses[:2]
    statuses = engine.statuses(campaign)
    assert [statuses[a] for a in addresses] == [S.SENT, S.SENT, S.CANCELLED, S.CANCELLED, S.CANCELLED]
    for address in addresses[2:]:
        assert engine.email(campaign, address).attempts == 0

    for _ in range(3):
        engine.clock.advance(minutes=10)
        assert engine.tick().claimed == 0
    assert engine.handler.delivered_to() == addresses[:2]
    campaign.refresh_from_db()
    assert campaign.status == Campaign.Status.CANCELLED


def test_cancel_between_batches_cancels_the_claimed_batches_too(make_engine):
    engine = make_engine(batch_size=2)
    addresses = [f"r{i}@example.org" for i in range(6)]
    campaign = engine.campaign(engine.contact_list(*addresses))
    engine.send_now(campaign)
    claimed = []

    engine.tick(enqueue=claimed.append)
    assert len(claimed) == 3
    engine.send_batch(claimed[0])
    lifecycle.cancel(campaign=campaign, now=engine.clock())
    for batch_id in claimed[1:]:
        engine.send_batch(batch_id)

    assert engine.handler.delivered_to() == addresses[:2]
    assert list(engine.statuses(campaign).values()).count(S.CANCELLED) == 4
    engine.clock.advance(minutes=10)  # past any lease
    assert engine.tick().claimed == 0
    assert engine.handler.delivered_to() == addresses[:2]


def test_a_batch_whose_campaign_was_paused_after_the_claim_hands_its_rows_back_unspent(engine):
    addresses = [f"r{i}@example.org" for i in range(3)]
    campaign = engine.campaign(engine.contact_list(*addresses))
    engine.send_now(campaign)
    claimed = []
    engine.tick(enqueue=claimed.append)
    lifecycle.pause(campaign=campaign, now=engine.clock())

    report = engine.send_batch(claimed[0])

    # The pause took the waiting batch back itself (see test_a_pause_or_cancel_takes_back_...).
    assert report.sent == 0 and report.connections == 0 and report.notes == ["batch already taken"]
    assert engine.handler.delivered_to() == []
    assert {(e.status, e.attempts, e.batch_id) for e in engine.emails(campaign).values()} == {(S.PENDING, 0, None)}
    lifecycle.resume(campaign=Campaign.objects.get(pk=campaign.pk), now=engine.clock())
    engine.tick()
    assert sorted(engine.handler.delivered_to()) == addresses


def test_a_message_delivered_while_another_worker_sees_the_cancel_is_still_recorded_sent(make_engine):
    engine = make_engine(batch_size=2)
    addresses = [f"r{i}@example.org" for i in range(4)]
    campaign = engine.campaign(engine.contact_list(*addresses))
    engine.send_now(campaign)
    claimed = []
    engine.tick(enqueue=claimed.append)
    first_batch, second_batch = claimed

    def cancel_and_run_the_other_worker():
        # Worker B's server has just accepted r2; before B records it, the owner cancels
        # and worker A starts on its own batch and notices the cancel.
        lifecycle.cancel(campaign=campaign, now=engine.clock())
        engine.send_batch(first_batch)

    fired = []

    def clock():
        if not fired and "r2@example.org" in engine.handler.delivered_to():
            fired.append(True)
            cancel_and_run_the_other_worker()
        return engine.clock()

    sender.send_batch(second_batch, clock=clock, sleep=engine.sleep)

    assert fired and engine.handler.delivered_to() == ["r2@example.org"]
    assert engine.statuses(campaign) == {
        "r0@example.org": S.CANCELLED,
        "r1@example.org": S.CANCELLED,
        "r2@example.org": S.SENT,
        "r3@example.org": S.CANCELLED,
    }


def test_pause_mid_batch_then_resume_sends_the_rest_without_resending_anyone(engine):
    addresses = [f"r{i}@example.org" for i in range(5)]
    campaign = engine.campaign(engine.contact_list(*addresses))
    engine.send_now(campaign)
    engine.sleep.at(3, lambda: lifecycle.pause(campaign=campaign, now=engine.clock()))

    engine.tick()

    assert engine.handler.delivered_to() == addresses[:3]
    statuses = engine.statuses(campaign)
    assert [statuses[a] for a in addresses] == [S.SENT, S.SENT, S.SENT, S.PENDING, S.PENDING]
    engine.clock.advance(seconds=10)
    assert engine.tick().claimed == 0  # paused: nothing claimed

    lifecycle.resume(campaign=campaign, now=engine.clock())
    engine.clock.advance(seconds=10)
    engine.tick()

    assert sorted(engine.handler.delivered_to()) == addresses  # each exactly once
    assert set(engine.statuses(campaign).values()) == {S.SENT}
    campaign.refresh_from_db()
    assert campaign.status == Campaign.Status.COMPLETED


# --- the owner's access ---------------------------------------------------------------------------


@pytest.mark.parametrize("lost_access", ["deactivated", "expired"])
def test_a_campaign_of_an_owner_without_access_sends_nothing(engine, lost_access):
    campaign = engine.campaign(engine.contact_list("a@example.org", "b@example.org"))
    engine.send_now(campaign)
    _take_access_away(engine.owner, lost_access)

    report = engine.tick()

    assert report.ran and report.claimed == 0
    assert engine.handler.connections == 0 and engine.handler.messages == []
    assert set(engine.statuses(campaign).values()) == {S.PENDING}


@pytest.mark.parametrize("lost_access", ["deactivated", "expired"])
def test_a_batch_claimed_before_the_owner_lost_access_is_handed_back_unsent(engine, lost_access):
    campaign = engine.campaign(engine.contact_list("a@example.org", "b@example.org"))
    engine.send_now(campaign)
    claimed = []
    engine.tick(enqueue=claimed.append)
    _take_access_away(engine.owner, lost_access)

    report = engine.send_batch(claimed[0])

    assert report.sent == 0 and report.released == 2
    assert engine.handler.connections == 0
    assert set(engine.statuses(campaign).values()) == {S.PENDING}


def _take_access_away(user, how):
    if how == "deactivated":
        user.is_active = False
    else:
        user.access_expires_at = timezone.now() - timedelta(minutes=1)
    user.save()


def test_a_scheduled_campaign_of_an_expired_owner_does_not_start(engine):
    campaign = engine.campaign(engine.contact_list("a@example.org"))
    lifecycle.schedule(campaign=campaign, at=engine.clock(), now=engine.clock())
    _take_access_away(engine.owner, "expired")

    report = engine.tick()

    assert report.started == [] and report.claimed == 0
    campaign.refresh_from_db()
    assert campaign.status == Campaign.Status.SCHEDULED
    assert not Email.objects.filter(campaign=campaign).exists()


@pytest.mark.parametrize("stop", ["pause", "cancel"])
def test_a_pause_or_cancel_takes_back_at_once_the_batches_no_worker_has_taken(engine, stop):
    """Claimed batches still waiting in the queue used to hold their rows 'queued' until a worker took
    them, or for the whole lease with no worker running. Now they come back at once, and the task
    that arrives later finds its batch taken and sends nothing."""
    addresses = [f"r{i}@example.org" for i in range(4)]
    campaign, (batch_id,) = engine.claimed_campaign(addresses)

    getattr(lifecycle, stop)(campaign=campaign, now=engine.clock())

    expected = S.PENDING if stop == "pause" else S.CANCELLED
    rows = engine.emails(campaign).values()
    assert {(e.status, e.batch_id, e.lease_expires_at) for e in rows} == {(expected, None, None)}
    late = engine.send_batch(batch_id)
    assert late.notes == ["batch already taken"] and engine.handler.messages == []
    if stop == "pause":
        lifecycle.resume(campaign=campaign, now=engine.clock())
        engine.tick()
        assert sorted(engine.handler.delivered_to()) == addresses


def test_a_batch_a_worker_took_before_the_pause_is_left_to_that_worker(engine):
    addresses = [f"r{i}@example.org" for i in range(3)]
    campaign, (batch_id,) = engine.claimed_campaign(addresses)
    assert ledger.take_batch(batch_id=batch_id, now=engine.clock())

    lifecycle.pause(campaign=campaign, now=engine.clock())

    assert {e.status for e in engine.emails(campaign).values()} == {S.QUEUED}  # the worker's, until it stops
