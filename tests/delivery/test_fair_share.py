"""Fair share between accounts: an account never holds queued more than about one dispatch interval
of what it sends now, so another marketer's first batch waits behind little (rate_limit.allowance).

Alice's campaign is on an account with no practical limit, Bob's 10 on his own. Rows are marked sent
by hand at chosen moments: the fair share is measured from sent_at, and these tests fix its numbers.
Batches are collected instead of sent.
"""

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from campaigns.models import Campaign, Email
from campaigns.services import lifecycle
from config.celery import app
from contacts.models import Contact
from delivery import dispatcher, rate_limit
from sending.models import SmtpAccount
from tests.factories import CampaignFactory, ContactListFactory, EmailFactory, SmtpAccountFactory

pytestmark = pytest.mark.django_db

S = Email.Status
UNLIMITED = {"max_per_minute": 10**8, "max_per_hour": 10**9, "max_per_day": 10**9}
WINDOW = 10  # the dispatch interval without a periodic task (settings.DISPATCH_INTERVAL_SECONDS)


def sending(owner, size, *, now, **account_fields):
    """A campaign sending to `size` new contacts of `owner` (bulk-created: thousands in a test)."""
    account = SmtpAccountFactory(owner=owner, **{**UNLIMITED, **account_fields})
    contacts = Contact.objects.bulk_create(
        Contact(owner=owner, email=f"{owner.username}-{i}@example.org") for i in range(size)
    )
    campaign = CampaignFactory(
        owner=owner, smtp_account=account, lists=[ContactListFactory(owner=owner, contacts=contacts)]
    )
    lifecycle.send_now(campaign=campaign, now=now)
    return campaign


def queued(campaign):
    return Email.objects.filter(campaign=campaign, status=S.QUEUED).count()


def send_queued(campaign, *, first, last, count=None):
    """The oldest `count` queued rows (all by default) sent between `first` and `last`, as workers
    would record them: the first at `first`, the last at `last`, the others in between."""
    ids = list(Email.objects.filter(campaign=campaign, status=S.QUEUED).order_by("id").values_list("id", flat=True))
    ids = ids[:count] if count is not None else ids
    Email.objects.filter(id__in=ids).update(status=S.SENT, sent_at=first + (last - first) / 2, batch_id=None)
    Email.objects.filter(id=ids[0]).update(sent_at=first)
    Email.objects.filter(id=ids[-1]).update(sent_at=last)


def test_two_marketers_race_bob_goes_in_the_first_round_and_alice_holds_her_fair_share(marketer, other_marketer):
    t = timezone.now()
    alice = sending(marketer, 4000, now=t)
    bob = sending(other_marketer, 10, now=t)

    # A fresh campaign: nothing measured yet, ten batches of 50 to start every worker at once.
    first = dispatcher.tick(now=t, enqueue=[].append)
    assert bob.smtp_account_id in [account for account, _, _ in first.batches[:2]]
    assert (queued(alice), queued(bob)) == (500, 10)

    # Alice's 500 sent over 5 s: 100 a second, so 1.1 intervals of it are 1,100 rows.
    send_queued(alice, first=t + timedelta(seconds=1), last=t + timedelta(seconds=6))
    send_queued(bob, first=t + timedelta(seconds=1), last=t + timedelta(seconds=1))
    second = dispatcher.tick(now=t + timedelta(seconds=6), enqueue=[].append)
    assert (second.claimed, queued(alice)) == (1100, 1100)

    # 1,000 of them sent over 8 s in the last interval: 125 a second, a cap of 1,375; 100 still in
    # flight, so 1,275 more.
    send_queued(alice, first=t + timedelta(seconds=7), last=t + timedelta(seconds=15), count=1000)
    third = dispatcher.tick(now=t + timedelta(seconds=16.5), enqueue=[].append)
    assert (third.claimed, queued(alice)) == (1275, 1375)
    # Nothing lost, nothing claimed twice: every row is in exactly one state.
    assert Email.objects.filter(campaign=alice).count() == 4000
    assert Email.objects.filter(campaign=alice, status=S.SENT).count() == 1500
    assert Email.objects.filter(campaign=alice, status=S.PENDING).count() == 4000 - 1500 - 1375


def test_a_fresh_campaign_starts_with_the_floor_of_ten_batches_of_its_account(marketer):
    t = timezone.now()
    campaign = sending(marketer, 300, now=t, batch_size=20)

    report = dispatcher.tick(now=t, enqueue=[].append)

    assert [size for _, _, size in report.batches] == [20] * 10
    assert queued(campaign) == 200
    # Until something is sent, the floor is all it holds; a second tick claims nothing.
    assert dispatcher.tick(now=t + timedelta(seconds=1), enqueue=[].append).claimed == 0


def test_a_burst_shorter_than_a_second_counts_as_one_second(marketer):
    t = timezone.now()
    campaign = sending(marketer, 8000, now=t)
    dispatcher.tick(now=t, enqueue=[].append)
    send_queued(campaign, first=t + timedelta(seconds=0.1), last=t + timedelta(seconds=0.2))  # 500 in 0.1 s

    dispatcher.tick(now=t + timedelta(seconds=1), enqueue=[].append)

    assert queued(campaign) == 5500  # 500 a second (not 5,000) x 1.1 x 10 s


def test_a_rate_limited_account_is_paced_as_before(marketer):
    t = timezone.now()
    campaign = sending(marketer, 300, now=t, max_per_minute=600, max_per_hour=100000, max_per_day=1000000)

    report = dispatcher.tick(now=t, enqueue=[].append)

    assert report.claimed == 100  # 600 a minute, for a 10 s window
    # However fast it went, its pacing bounds it, not what it sent.
    send_queued(campaign, first=t + timedelta(seconds=1), last=t + timedelta(seconds=2))
    assert dispatcher.tick(now=t + timedelta(seconds=10), enqueue=[].append).claimed == 100


def test_a_fast_account_with_a_limit_keeps_its_limit_below_its_fair_share(marketer):
    # 12,000 a minute is 2,000 an interval; it sent 500 a second lately, a fair share of 5,500.
    t = timezone.now()
    campaign = sending(marketer, 3000, now=t, max_per_minute=12000)
    assert dispatcher.tick(now=t, enqueue=[].append).claimed == 500  # fresh: the floor, under its pacing
    send_queued(campaign, first=t + timedelta(seconds=1), last=t + timedelta(seconds=1.5))

    dispatcher.tick(now=t + timedelta(seconds=2), enqueue=[].append)

    assert queued(campaign) == 2000  # its pacing, nothing in flight


def test_an_unlimited_account_counts_no_day_of_sent_rows(marketer):
    """The hour tallies show no limit is near: the per-minute, per-hour and per-day counts are not
    made (a day of a million sent rows was 140 ms of every tick)."""
    t = timezone.now()
    account = SmtpAccountFactory(owner=marketer, **UNLIMITED)
    done = CampaignFactory(owner=marketer, smtp_account=account, status=Campaign.Status.COMPLETED)
    account = SmtpAccount.objects.select_related("state").get(pk=account.pk)  # as the tick reads it
    for hours in (2, 5, 20):
        EmailFactory(campaign=done, status=S.SENT, sent_at=t - timedelta(hours=hours))

    with CaptureQueriesContext(connection) as queries:
        budget = rate_limit.allowance(account=account, now=t, window_seconds=WINDOW)

    assert budget == 500
    assert len(queries) == 3  # in flight, the measured rate, the tallies' bounds


def test_a_limit_the_tallies_say_is_near_is_counted_exactly(marketer):
    t = timezone.now()
    account = SmtpAccountFactory(owner=marketer, max_per_minute=10**8, max_per_hour=10**9, max_per_day=300)
    done = CampaignFactory(owner=marketer, smtp_account=account, status=Campaign.Status.COMPLETED)
    # Within the day, and one 25 h ago: in the hours the tallies give the day window, but not in it.
    for age in (timedelta(hours=2), timedelta(hours=23), timedelta(hours=24, minutes=1)):
        EmailFactory(campaign=done, status=S.SENT, sent_at=t - age)

    assert rate_limit.allowance(account=account, now=t, window_seconds=WINDOW) == 298


# --- a tick at once when an account's workers run low -------------------------------------------


def test_a_tick_is_due_when_fewer_than_two_batches_of_a_fast_account_are_left(marketer):
    t = timezone.now()
    campaign = sending(marketer, 1000, now=t)
    account_id = campaign.smtp_account_id
    dispatcher.tick(now=t, enqueue=[].append)
    assert not dispatcher.queue_running_dry(account_id=account_id)  # ten batches queued

    send_queued(campaign, first=t, last=t + timedelta(seconds=1), count=500 - 99)

    assert dispatcher.queue_running_dry(account_id=account_id)  # 99 rows: under two batches of 50
    assert not dispatcher.queue_running_dry(account_id=account_id + 1000)  # no such account


def test_the_low_water_count_reads_the_tallies_not_the_email_rows(marketer):
    """Counting the queued rows read the index of queued rows, which keeps an entry for every row sent
    since the last vacuum: the count grew with the campaign, after every batch. The queued tallies say
    the same, exactly, in a few rows."""
    t = timezone.now()
    campaign = sending(marketer, 1000, now=t)
    dispatcher.tick(now=t, enqueue=[].append)
    send_queued(campaign, first=t, last=t + timedelta(seconds=1), count=300)
    with CaptureQueriesContext(connection) as queries:
        assert not dispatcher.queue_running_dry(account_id=campaign.smtp_account_id)  # 200 of 500 left
    assert [q["sql"] for q in queries.captured_queries if "campaigns_email" in q["sql"]] == []
    assert rate_limit.queued_count(account_id=campaign.smtp_account_id) == 200


def test_a_rate_limited_account_waits_for_the_next_tick_whatever_is_left(marketer):
    t = timezone.now()
    campaign = sending(marketer, 300, now=t, max_per_minute=600)
    dispatcher.tick(now=t, enqueue=[].append)
    send_queued(campaign, first=t, last=t + timedelta(seconds=1))

    assert not dispatcher.queue_running_dry(account_id=campaign.smtp_account_id)  # paced as before


def test_the_worker_that_sends_a_fast_accounts_last_queued_batch_publishes_a_tick(broker, make_engine):
    from delivery import tasks

    engine = make_engine(**UNLIMITED)
    campaign, batch_ids = engine.claimed_campaign(["ann@example.org", "bob@example.org"])

    tasks.send_batch(str(batch_ids[0]))  # the task's own code, in this process

    assert set(engine.statuses(campaign).values()) == {S.SENT}
    assert published_ticks() == ["campaigns.dispatch"]


# --- a tick at once on send now and resume -------------------------------------------------------


def published_ticks():
    """Tick tasks waiting in the broker's dispatch queue, taken out of it."""
    taken = []
    with app.connection_for_read() as conn:
        queue = conn.SimpleQueue("dispatch")
        while True:
            try:
                message = queue.get(timeout=0.5)
            except queue.Empty:
                break
            taken.append(message.headers["task"])
            message.ack()
        queue.close()
    return taken


@pytest.fixture
def broker():
    try:
        published_ticks()  # an empty queue to start from
    except OSError as exc:
        pytest.skip(f"the broker does not answer: {exc}")


def test_send_now_from_the_admin_publishes_a_tick_once_it_commits(
    broker, marketer_client, marketer, django_capture_on_commit_callbacks
):
    contacts = Contact.objects.bulk_create(Contact(owner=marketer, email=f"r{i}@example.org") for i in range(3))
    draft = CampaignFactory(
        owner=marketer,
        smtp_account=SmtpAccountFactory(owner=marketer),
        lists=[ContactListFactory(owner=marketer, contacts=contacts)],
    )

    with django_capture_on_commit_callbacks(execute=True):
        marketer_client.post(
            reverse("admin:campaigns_campaign_changelist"),
            {"action": "send_now", "_selected_action": [draft.pk], "post": "yes"},
        )

    draft.refresh_from_db()
    assert draft.status == Campaign.Status.SENDING
    assert published_ticks() == ["campaigns.dispatch"]


def test_resume_from_the_admin_publishes_a_tick_and_pause_none(
    broker, marketer_client, marketer, django_capture_on_commit_callbacks
):
    campaign = sending(marketer, 3, now=timezone.now())
    changelist = reverse("admin:campaigns_campaign_changelist")

    with django_capture_on_commit_callbacks(execute=True):
        marketer_client.post(changelist, {"action": "pause", "_selected_action": [campaign.pk]})
    assert published_ticks() == []
    with django_capture_on_commit_callbacks(execute=True):
        marketer_client.post(changelist, {"action": "resume", "_selected_action": [campaign.pk]})

    campaign.refresh_from_db()
    assert campaign.status == Campaign.Status.SENDING
    assert published_ticks() == ["campaigns.dispatch"]


def test_a_refused_send_now_publishes_no_tick(broker, marketer_client, marketer, django_capture_on_commit_callbacks):
    no_list = CampaignFactory(owner=marketer, smtp_account=SmtpAccountFactory(owner=marketer))

    with django_capture_on_commit_callbacks(execute=True):
        marketer_client.post(
            reverse("admin:campaigns_campaign_changelist"),
            {"action": "send_now", "_selected_action": [no_list.pk], "post": "yes"},
        )

    assert published_ticks() == []
