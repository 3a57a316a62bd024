"""The tallies the database triggers keep (campaigns.tallies) equal a fresh count of the Email rows
after every kind of write: the ledger's transitions, the real sender, tracking, lifecycle
actions, deletions."""

import math
from collections import defaultdict
from datetime import UTC, datetime, timedelta

import pytest
from django.core.management import call_command
from django.db import connection

from campaigns import ledger, tallies
from campaigns.models import CampaignHourTally, CampaignTally, Email
from campaigns.services import lifecycle
from contacts.models import Contact
from tests.factories import CampaignFactory, ContactFactory
from tracking import services as tracking

S = Email.Status
F = Email.FailureClass
READER = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36"
APPLE_PROXY = "Mozilla/5.0"


def place(moment):
    seconds = math.floor(moment.timestamp())
    return seconds // 3600, seconds % 3600 // 900


def expected_tallies():
    """What the tallies must hold, counted here in Python from the Email rows themselves."""
    counts = defaultdict(lambda: [0, 0, 0, 0, 0])
    hours = defaultdict(lambda: [0] * 16)

    def add(campaign_id, moment, metric, value=1):
        hour, quarter = place(moment)
        hours[(campaign_id, hour)][4 * metric + quarter] += value

    for e in Email.objects.all():
        row = counts[(e.campaign_id, e.status, e.failure_class)]
        row[0] += 1
        row[1] += e.first_opened_at is not None
        row[2] += e.machine_open and e.first_opened_at is None
        row[3] += e.click_count > 0
        row[4] += e.unsubscribed_at is not None
        if e.status == S.SENT and e.sent_at is not None:
            add(e.campaign_id, e.sent_at, 0)
            add(e.campaign_id, e.sent_at, 1, int(e.first_opened_at is not None))
        if e.first_opened_at is not None:
            add(e.campaign_id, e.first_opened_at, 2)
        if e.status == S.FAILED:
            add(e.campaign_id, e.updated_at, 3)
    return (
        {key: tuple(v) for key, v in counts.items()},
        {key: tuple(v) for key, v in hours.items() if any(v)},
    )


def stored_tallies():
    counts = {
        (t.campaign_id, t.status, t.failure_class): (t.n, t.opened, t.machine_only, t.clicked, t.unsubscribed)
        for t in CampaignTally.objects.all()
    }
    hours = {
        (t.campaign_id, t.hour): tuple(getattr(t, f) for f in tallies.HOUR_FIGURES)
        for t in CampaignHourTally.objects.all()
    }
    # Keys whose rows all left stay behind at zero until a recount; they count for nothing.
    return (
        {key: v for key, v in counts.items() if any(v)},
        {key: v for key, v in hours.items() if any(v)},
    )


def assert_tallies_exact(step):
    assert stored_tallies() == expected_tallies(), f"tallies differ from the Email rows after: {step}"


@pytest.fixture
def clock():
    # Just before a quarter hour, so a few minutes move a row to another quarter and hour.
    return datetime(2026, 11, 30, 18, 13, 30, tzinfo=UTC)


def test_every_kind_of_write_keeps_the_tallies_exact(engine, clock):
    engine.clock.now = clock
    contacts = engine.contact_list(*[f"r{i}@example.org" for i in range(8)], name="Main")
    campaign = engine.campaign(contacts, name="A")
    other = engine.campaign(contacts, name="B")
    assert_tallies_exact("nothing yet")

    lifecycle.send_now(campaign=campaign, now=clock)
    assert Email.objects.filter(campaign=campaign, status=S.PENDING).count() == 8
    assert_tallies_exact("materialise (one INSERT ... SELECT)")

    batch_id, claimed, _ = ledger.claim(campaign_ids=[campaign.pk], limit=5, now=clock)
    assert claimed == 5
    assert_tallies_exact("claim")
    assert ledger.take_batch(batch_id=batch_id, now=clock)
    token = batch_id
    assert_tallies_exact("take batch (nothing counted changes)")

    e = list(Email.objects.filter(batch_id=token).order_by("id"))
    ledger.mark_sent(email_id=e[0].pk, batch_id=token, code=250, text="2.0.0 OK", now=clock)
    assert_tallies_exact("sent")
    ledger.mark_sent(email_id=e[1].pk, batch_id=token, code=250, text="2.0.0 OK", now=clock + timedelta(minutes=3))
    assert_tallies_exact("sent in the next quarter hour")
    ledger.mark_failed(
        email_id=e[2].pk,
        batch_id=token,
        code=550,
        text="5.1.1 unknown",
        failure_class=F.BOUNCED,
        now=clock + timedelta(minutes=50),
    )
    assert_tallies_exact("failed, bounced (next hour)")
    ledger.mark_failed(
        email_id=e[3].pk, batch_id=token, code=554, text="5.7.1 rejected", failure_class=F.REJECTED, now=clock
    )
    assert_tallies_exact("failed, rejected")
    ledger.defer(email_id=e[4].pk, batch_id=token, code=451, text="4.7.0 later", now=clock)
    assert_tallies_exact("deferred")

    batch_id, _, _ = ledger.claim(campaign_ids=[campaign.pk], limit=2, now=clock)
    assert ledger.take_batch(batch_id=batch_id, now=clock)
    ledger.release(batch_id=batch_id, now=clock)
    assert_tallies_exact("batch released to pending")
    batch_id, _, _ = ledger.claim(campaign_ids=[campaign.pk], limit=1, now=clock)
    deferred, expired = ledger.return_due(now=clock + timedelta(hours=2))
    assert (deferred, expired) == (1, 1)
    assert_tallies_exact("deferred and lease-expired rows returned to pending")

    now = clock + timedelta(hours=3)
    tracking.record_open(email_id=e[0].pk, user_agent=READER, now=now)
    assert_tallies_exact("a reader's open")
    tracking.record_open(email_id=e[0].pk, user_agent=READER, now=now + timedelta(minutes=1))
    assert_tallies_exact("a second open (nothing counted changes)")
    tracking.record_open(email_id=e[1].pk, user_agent=APPLE_PROXY, now=now)
    assert Email.objects.get(pk=e[1].pk).machine_open
    assert_tallies_exact("a machine open")
    link = tracking.store_links(campaign_id=campaign.pk, urls=["https://example.com/x"])["https://example.com/x"]
    assert tracking.record_click(email_id=e[1].pk, link_id=link, user_agent=READER, now=now)
    assert_tallies_exact("a reader's click (also the first open)")
    tracking.record_click(email_id=e[1].pk, link_id=link, user_agent=READER, now=now)
    assert_tallies_exact("a second click")

    lifecycle.send_now(campaign=other, now=clock)
    tracking.unsubscribe(email_id=e[0].pk, user_agent=READER, now=now)
    assert Email.objects.get(campaign=other, contact=e[0].contact).status == S.CANCELLED
    assert_tallies_exact("unsubscribe (and the contact's unsent emails cancelled)")

    Email.objects.filter(pk=e[2].pk).update(updated_at=now)
    assert_tallies_exact("a failed email touched later (its failure moves to that hour)")
    Email.objects.filter(pk=e[0].pk).update(possible_duplicate=True)
    assert_tallies_exact("a sent email's uncounted column")
    assert lifecycle.retry_failed(campaign=campaign, email_ids=[e[3].pk], now=now) == 1
    assert_tallies_exact("retry one failed email")
    assert lifecycle.retry_failed(campaign=campaign, now=now) == 1  # (the ledger alone bounces no contact)
    assert_tallies_exact("retry the other failed email")

    contacts.contacts.add(ContactFactory(owner=engine.owner, email="late@example.org"))
    assert lifecycle.extend_to_new_contacts(campaign=campaign, now=now) == 1
    assert_tallies_exact("extend to new contacts")

    lifecycle.cancel(campaign=other, now=now)
    assert_tallies_exact("cancel")

    engine.clock.now = now + timedelta(minutes=20)
    engine.handler.rcpt_replies["r7@example.org"] = (550, "5.1.1 no such user")
    engine.tick()
    assert Email.objects.filter(campaign=campaign, status=S.SENT).count() >= 6
    assert_tallies_exact("a dispatcher tick and the real sender over SMTP")

    Contact.objects.filter(email="r3@example.org").delete()
    assert_tallies_exact("a contact deleted (its emails keep their rows, contact cleared)")

    lifecycle.remove_pending(campaign=campaign, email_ids=list(Email.objects.values_list("id", flat=True)), now=now)
    Email.objects.filter(campaign=campaign, status=S.CANCELLED).delete()
    assert_tallies_exact("emails deleted")

    other.delete()
    assert_tallies_exact("a campaign deleted with its emails")
    assert not CampaignTally.objects.filter(campaign_id=other.pk).exists()
    assert not CampaignHourTally.objects.filter(campaign_id=other.pk).exists()

    before = stored_tallies()
    call_command("recount_tallies", stdout=open("/dev/null", "w"))
    assert stored_tallies() == before
    # A recount leaves no zero rows behind.
    assert CampaignTally.objects.count() == len(before[0])
    assert_tallies_exact("recount_tallies")


def test_recount_rebuilds_tallies_that_went_wrong(db, marketer, clock):
    campaign = CampaignFactory(owner=marketer)
    Email.objects.bulk_create(
        [
            Email(
                campaign=campaign,
                to_email=f"x{i}@example.org",
                status=S.SENT,
                sent_at=clock - timedelta(minutes=i),
                first_opened_at=clock if i % 2 else None,
            )
            for i in range(40)
        ]
    )
    assert_tallies_exact("a bulk insert")
    CampaignTally.objects.filter(campaign=campaign).update(n=999)
    CampaignHourTally.objects.all().delete()
    assert stored_tallies() != expected_tallies()
    tallies.recount()
    assert_tallies_exact("recount")
    assert sum(t.n for t in CampaignTally.objects.all()) == 40


def test_a_bulk_update_of_many_rows_is_counted_once_per_row(db, marketer, clock):
    first, second = CampaignFactory(owner=marketer), CampaignFactory(owner=marketer)
    for campaign in (first, second):
        Email.objects.bulk_create(
            Email(campaign=campaign, to_email=f"y{i}@example.org", status=S.QUEUED) for i in range(30)
        )
    # One statement over two campaigns, rows landing in several quarters and hours.
    Email.objects.filter(to_email__startswith="y1").update(status=S.SENT, sent_at=clock)
    Email.objects.filter(status=S.QUEUED).update(status=S.FAILED, failure_class=F.THROTTLED, updated_at=clock)
    assert_tallies_exact("bulk updates")
    assert CampaignTally.objects.get(campaign=first, status=S.SENT).n == 11  # y1, y10..y19


def test_tallies_triggers_are_installed_for_this_database(db):
    with connection.cursor() as cursor:
        cursor.execute("SELECT tgname FROM pg_trigger WHERE tgname LIKE %s", ["%tally%"])
        names = {row[0] for row in cursor.fetchall()}
    assert names == {
        "campaigns_email_tally_insert",
        "campaigns_email_tally_update",
        "campaigns_email_tally_delete",
        "campaigns_campaign_tally_delete",
    }


@pytest.mark.parametrize(
    "carried",
    [{}, {"machine_open": True}, {"click_count": 2}, {"unsubscribed_at": datetime(2026, 11, 30, tzinfo=UTC)}],
    ids=["nothing", "machine open", "clicked", "unsubscribed"],
)
def test_one_row_status_changes_keep_the_tallies_exact(db, marketer, clock, carried):
    """The UPDATE trigger's one-row path (the sender's statements) in each of its branches: a row
    carrying a counted figure from status to status, into every quarter of an hour, to a status
    before or after its own in key order, and a row whose tally row does not exist yet."""
    campaign = CampaignFactory(owner=marketer)
    Email.objects.bulk_create(
        Email(campaign=campaign, to_email=f"q{i}@example.org", status=S.QUEUED, **carried) for i in range(7)
    )
    rows = list(Email.objects.filter(campaign=campaign).order_by("id"))
    for quarter, email in enumerate(rows[:4]):
        moment = clock + timedelta(minutes=15 * quarter)
        Email.objects.filter(pk=email.pk).update(status=S.SENT, sent_at=moment, updated_at=moment)
        assert_tallies_exact(f"sent in quarter {place(moment)[1]}")
    Email.objects.filter(pk=rows[4].pk).update(status=S.FAILED, failure_class=F.BOUNCED, updated_at=clock)
    assert_tallies_exact("failed (a key after queued)")
    Email.objects.filter(pk=rows[5].pk).update(status=S.DEFERRED, updated_at=clock)
    assert_tallies_exact("deferred (a key before queued, no hour)")
    Email.objects.filter(pk=rows[6].pk).update(status=S.PENDING, updated_at=clock)
    Email.objects.filter(pk=rows[6].pk).update(status=S.CANCELLED, updated_at=clock)
    assert_tallies_exact("pending, then cancelled")
