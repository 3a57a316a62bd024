"""The lease fence (campaigns/lease.py): a worker begins no send it cannot prove it holds,
and a row taken back from a worker that may have begun sending it is flagged possible_duplicate.

Time is the test's clock (wall and monotonic alike); a real aiosmtpd server takes the messages.
The same fence across two hosts and a cut link: tests/e2e/test_cut_off_worker.py.
"""

import uuid
from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from campaigns import lease, ledger
from campaigns.models import Campaign, Email
from delivery import sender
from tests.factories import CampaignFactory, EmailFactory
from tests.smtp_server import RecordingHandler

S = Email.Status


class CallbackHandler(RecordingHandler):
    """Calls `on_rcpt(address)` (in the server's thread) when a RCPT arrives."""

    on_rcpt = None

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if self.on_rcpt is not None:
            self.on_rcpt(address)
        return await super().handle_RCPT(server, session, envelope, address, rcpt_options)


def past_the_lease():
    """So long after a renewal that the worker may not begin a send, yet no dispatcher may take its rows."""
    return settings.EMAIL_LEASE_SECONDS - lease.margin() + 1


def past_the_reclaim():
    """So long after a renewal that a dispatcher takes the rows back."""
    return settings.EMAIL_LEASE_SECONDS + lease.margin() + 1


def in_sending_order(campaign):
    """The campaign's addresses in the order a batch sends them: by row id, which need not be the
    order the contacts were made in."""
    return list(Email.objects.filter(campaign=campaign).order_by("id").values_list("to_email", flat=True))


def stall_once_at_rcpt(engine, address, *, seconds):
    """The test's clock jumps `seconds` when the server first gets a RCPT for `address`; returns
    the list of the times it jumped to."""
    jumped = []

    def stall(rcpt):
        if rcpt == address and not jumped:
            jumped.append(engine.clock.advance(seconds=seconds))

    engine.handler.on_rcpt = stall
    return jumped


# --- the deadline ---------------------------------------------------------------------------------


def test_the_deadline_is_the_lease_less_the_margin_and_a_renewal_is_due_halfway_to_it(settings):
    settings.EMAIL_LEASE_SECONDS, settings.SMTP_TIMEOUT, settings.EMAIL_LEASE_CLOCK_SKEW_SECONDS = 45, 20, 5
    now = timezone.now()
    # A lease read 30 s before it ends, by a worker whose monotonic clock says 1000.
    held = lease.Lease.ending(expires_at=now + timedelta(seconds=30), asked_at=now, asked_monotonic=1000.0)
    assert held.deadline == 1000 + 30 - 25
    assert held.may_send(1004.9) and not held.may_send(1005.0)
    renewed = lease.Lease.renewed(asked_monotonic=2000.0)
    assert renewed.deadline == 2000 + 45 - 25
    assert not renewed.renewal_due(2000 + 9.9) and renewed.renewal_due(2000 + 10.1)  # half of the 20 s it grants
    assert lease.reclaim_before(now) == now - timedelta(seconds=25)


def test_settings_refuse_a_lease_too_short_for_its_margin(tmp_path):
    from tests.test_settings import clean_env, run_python

    result = run_python("import config.settings", clean_env(tmp_path, EMAIL_LEASE_SECONDS="30", SMTP_TIMEOUT="20"))
    assert result.returncode != 0
    assert "EMAIL_LEASE_SECONDS (30) must be at least 10 s more than SMTP_TIMEOUT" in result.stderr


# --- taking rows back -------------------------------------------------------------------------------


def test_the_first_queued_row_of_a_taken_batch_is_flagged_when_taken_back_and_no_other(marketer):
    """A worker sends its batch in id order and records each result before the next content goes
    out: the first row still queued is the one it may have been sending. An untaken batch sent nothing."""
    now = timezone.now()
    campaign = CampaignFactory(owner=marketer, status=Campaign.Status.SENDING)
    taken, untaken = uuid.uuid4(), uuid.uuid4()
    ended = now - timedelta(seconds=lease.margin())

    def row(batch, status=S.QUEUED):
        return EmailFactory(campaign=campaign, status=status, batch_id=batch, lease_expires_at=ended)

    sent, sending, waiting = row(None, S.SENT), row(taken), row(taken)
    never_sent = [row(untaken), row(untaken)]
    assert ledger.take_batch(batch_id=taken, now=now)

    assert ledger.return_due(now=now) == (0, 4)

    flagged = set(Email.objects.filter(campaign=campaign, possible_duplicate=True).values_list("id", flat=True))
    assert flagged == {sending.pk}
    assert set(
        Email.objects.filter(pk__in=[sending.pk, waiting.pk, *(e.pk for e in never_sent)]).values_list(
            "status", flat=True
        )
    ) == {S.PENDING}
    assert Email.objects.get(pk=sent.pk).status == S.SENT


# --- the worker's side --------------------------------------------------------------------------------


def test_a_worker_past_its_deadline_renews_before_the_content_and_sends_when_it_still_holds_the_row(
    make_engine, monkeypatch
):
    """The clock passes the deadline while the message's envelope is with the server (a stall: a
    blocked database, a paused VM). Nothing has taken the rows back, so the renewal succeeds and the
    message goes out, once."""
    engine = make_engine(CallbackHandler())
    addresses = ["a@example.org", "b@example.org"]
    campaign, (batch_id,) = engine.claimed_campaign(addresses)
    renewals = []
    renew = ledger.renew_lease
    monkeypatch.setattr(ledger, "renew_lease", lambda **kwargs: renewals.append(kwargs["now"]) or renew(**kwargs))
    jumped = stall_once_at_rcpt(engine, "b@example.org", seconds=past_the_lease())
    report = engine.send_batch(batch_id)

    assert report.sent == 2 and sorted(engine.handler.delivered_to()) == addresses
    assert renewals == jumped  # one renewal, right after the stall
    assert {e.status for e in engine.emails(campaign).values()} == {S.SENT}
    assert not any(e.possible_duplicate for e in engine.emails(campaign).values())


def test_a_worker_whose_rows_were_taken_back_during_a_stall_does_not_send_them(make_engine, monkeypatch):
    """The clock passes the reclaim while the message's envelope is with the server, and a
    dispatcher takes the rows back: the renewal finds none of them, so the content is never written
    (the connection is dropped instead) and the new holder sends each row once."""
    engine = make_engine(CallbackHandler())
    addresses = ["a@example.org", "b@example.org", "c@example.org"]
    campaign, (batch_id,) = engine.claimed_campaign(addresses)
    first, second, third = in_sending_order(campaign)
    renew = ledger.renew_lease
    reclaimed = []

    def taken_back_first(**kwargs):
        if not reclaimed:
            engine.tick(enqueue=reclaimed.append)
        return renew(**kwargs)

    monkeypatch.setattr(ledger, "renew_lease", taken_back_first)
    stall_once_at_rcpt(engine, second, seconds=past_the_reclaim())
    report = engine.send_batch(batch_id)

    assert report.sent == 1 and engine.handler.delivered_to() == [first]
    assert "lease lost: the rest belongs to another worker" in report.notes
    assert len(reclaimed) == 1
    assert engine.statuses(campaign) == {first: S.SENT, second: S.QUEUED, third: S.QUEUED}

    engine.send_batch(reclaimed[0])

    assert sorted(engine.handler.delivered_to()) == addresses  # each exactly once
    assert set(engine.statuses(campaign).values()) == {S.SENT}


def test_the_retry_after_a_reconnect_is_not_sent_once_the_rows_were_taken_back(make_engine):
    """The third copy of the two-host cut: a message lost after its content (the server may have it),
    the worker then stalled past its lease while reconnecting, and a dispatcher took its rows back
    for another worker. The retry must not go out: the row has a new holder, which sends it once more,
    flagged as the possible duplicate it is."""
    engine = make_engine(RecordingHandler())
    addresses = ["a@example.org", "b@example.org"]
    campaign, (batch_id,) = engine.claimed_campaign(addresses)
    first, second = in_sending_order(campaign)
    engine.handler.drop_after_data = {first: 1}
    reclaimed = []

    def clock():
        if engine.handler.dropped and not reclaimed:
            engine.clock.advance(seconds=past_the_reclaim())
            engine.tick(enqueue=reclaimed.append)
        return engine.clock()

    report = sender.send_batch(batch_id, clock=clock, sleep=engine.sleep, monotonic=lambda: clock().timestamp())

    assert report.sent == 0 and engine.handler.messages == []
    assert [m.rcpt_tos for m in engine.handler.dropped] == [[first]]
    assert len(reclaimed) == 1

    engine.send_batch(reclaimed[0])

    assert sorted(engine.handler.delivered_to()) == addresses  # first: the lost copy and this one, no third
    lost, other = engine.email(campaign, first), engine.email(campaign, second)
    assert (lost.status, lost.possible_duplicate) == (S.SENT, True)
    assert (other.status, other.possible_duplicate) == (S.SENT, False)


def test_a_short_lease_is_renewed_while_a_batch_sends(make_engine, settings, monkeypatch):
    """With EMAIL_LEASE_SECONDS=45 and SMTP_TIMEOUT=20, a worker may send for 20 s after each renewal:
    a batch that takes longer (each message 4 s, a slow server) renews every 10 s and loses no row."""
    settings.EMAIL_LEASE_SECONDS, settings.SMTP_TIMEOUT, settings.EMAIL_LEASE_CLOCK_SKEW_SECONDS = 45, 20, 5
    engine = make_engine(CallbackHandler())
    addresses = [f"r{i}@example.org" for i in range(8)]
    campaign, (batch_id,) = engine.claimed_campaign(addresses)
    renewals = []
    renew = ledger.renew_lease
    monkeypatch.setattr(ledger, "renew_lease", lambda **kwargs: renewals.append(kwargs["now"]) or renew(**kwargs))
    engine.handler.on_rcpt = lambda address: engine.clock.advance(seconds=4)

    report = engine.send_batch(batch_id)

    assert report.sent == 8 and sorted(engine.handler.delivered_to()) == addresses
    assert set(engine.statuses(campaign).values()) == {S.SENT}
    assert len(renewals) >= 2
