"""The dispatcher tick and its ledger steps: materialise, return due rows, claim within
each account's limits with accounts taking turns, complete, and one tick at a time.

Batches are collected instead of sent (`enqueue=claimed.append`) unless sending is the point.
"""

import uuid
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from campaigns import lease, ledger
from campaigns.models import Campaign, DispatcherState, Email
from campaigns.services import lifecycle
from contacts.models import Contact
from delivery import dispatcher
from sending.models import SmtpAccountState
from tests.factories import (
    CampaignFactory,
    ContactFactory,
    ContactListFactory,
    EmailFactory,
    SmtpAccountFactory,
)

S = Email.Status
C = Campaign.Status


def sending_campaign(owner, *, size=0, now=None, account=None, **account_fields):
    """A campaign already sending, with `size` pending rows (no SMTP server involved)."""
    account = account or SmtpAccountFactory(
        owner=owner, **{"max_per_minute": 6000, "max_per_hour": 100000, "max_per_day": 1000000, **account_fields}
    )
    contacts = [ContactFactory(owner=owner) for _ in range(size)]
    contact_list = ContactListFactory(owner=owner, contacts=contacts)
    campaign = CampaignFactory(owner=owner, smtp_account=account, lists=[contact_list])
    lifecycle.send_now(campaign=campaign, now=now or timezone.now())
    return campaign


def claimed_ids(batch_ids):
    return list(Email.objects.filter(batch_id__in=batch_ids).values_list("id", flat=True))


# --- step 2: materialise ------------------------------------------------------------------------


def test_materialise_is_one_insert_that_deduplicates_and_leaves_out_suppressed_and_foreign_contacts(
    marketer, other_marketer
):
    alice, mallory = marketer, other_marketer
    a, b, shared, c = (ContactFactory(owner=alice, email=f"{n}@example.org") for n in ("a", "b", "shared", "c"))
    unsubscribed = ContactFactory(owner=alice, email="unsub@example.org", status=Contact.Status.UNSUBSCRIBED)
    bounced = ContactFactory(owner=alice, email="bounced@example.org", status=Contact.Status.BOUNCED)
    complained = ContactFactory(owner=alice, email="complained@example.org", status=Contact.Status.COMPLAINED)
    # Another owner's contacts: one slipped into alice's list, one on mallory's own list.
    intruder = ContactFactory(owner=mallory, email="intruder@example.org")
    mallorys_own = ContactFactory(owner=mallory, email="a-twin@example.org")
    # Alice's contact reachable only through mallory's list.
    alices_via_mallory = ContactFactory(owner=alice, email="via-mallory@example.org")
    first = ContactListFactory(owner=alice, contacts=[a, b, shared, unsubscribed, bounced, complained, intruder])
    second = ContactListFactory(owner=alice, contacts=[shared, c])
    mallorys = ContactListFactory(owner=mallory, contacts=[mallorys_own, alices_via_mallory])
    campaign = CampaignFactory(owner=alice, lists=[first, second, mallorys])
    now = timezone.now()

    with CaptureQueriesContext(connection) as queries:
        created = ledger.materialise(campaign_id=campaign.pk, now=now)

    # Whether it is a resend, then its segments (none here; their SQL would join the insert's) are read
    # first: only the audience that applies is in the statement. (A chunk of a start knows the first.)
    assert len(queries.captured_queries) == 3
    assert "source_campaign_id" in queries.captured_queries[0]["sql"]
    assert "campaigns_segment" in queries.captured_queries[1]["sql"]
    assert queries.captured_queries[2]["sql"].lstrip().upper().startswith("INSERT")
    assert "first_opened_at" not in queries.captured_queries[2]["sql"]  # no resend branch
    assert created == 4
    rows = {e.to_email: e for e in Email.objects.filter(campaign=campaign)}
    assert set(rows) == {"a@example.org", "b@example.org", "shared@example.org", "c@example.org"}
    for contact in (a, b, shared, c):
        row = rows[contact.email]
        assert (row.contact_id, row.to_name, row.status, row.attempts) == (contact.pk, contact.name, S.PENDING, 0)
        assert row.created_at == now and row.possible_duplicate is False

    # Again: nobody already in the campaign is inserted twice or touched.
    Email.objects.filter(campaign=campaign, to_email="a@example.org").update(status=S.SENT)
    assert ledger.materialise(campaign_id=campaign.pk, now=now) == 0
    assert Email.objects.get(campaign=campaign, to_email="a@example.org").status == S.SENT


def test_a_claim_updates_its_rows_through_the_primary_key_whatever_the_statistics_say(marketer):
    """Statistics taken before a campaign's rows existed (no pending row, they say) made PostgreSQL
    join the picked ids against a scan of every pending row: each claim of 50 read all 20,000."""
    campaign = sending_campaign(marketer, size=0)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE campaigns_email")
    contacts = [ContactFactory(owner=marketer) for _ in range(40)]
    campaign.lists.first().contacts.add(*contacts)
    ledger.materialise(campaign_id=campaign.pk, now=timezone.now())
    sql, params = ledger.claim_statement(
        campaign_ids=[campaign.pk],
        limit=10,
        now=timezone.now(),
        after_id=0,
        batch_ids=[uuid.uuid4()] * 2,
        batch_size=5,
    )
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")  # a table this small is read whole: compare indexes
        cursor.execute("EXPLAIN " + sql, params)
        plan = "\n".join(row[0] for row in cursor.fetchall())
    # The picked ids drive an index lookup of their own (the primary key at any real size; on a
    # table this small the planner may take another index led by id's column list), never a join
    # against a scan of the pending rows.
    assert "Index Cond: (id = ANY" in plan, plan
    assert "Nested Loop" not in plan and "Semi Join" not in plan, plan


def test_materialise_with_the_num_queries_fixture(marketer, django_assert_num_queries):
    contacts = [ContactFactory(owner=marketer) for _ in range(5)]
    campaign = CampaignFactory(owner=marketer, lists=[ContactListFactory(owner=marketer, contacts=contacts)])
    with django_assert_num_queries(3):  # whether it is a resend, its segments (none), then the insert
        assert ledger.materialise(campaign_id=campaign.pk, now=timezone.now()) == 5


def test_a_start_to_lists_reads_no_email_row_and_a_resend_no_list(marketer):
    """With both audiences in the statement and an InitPlan switching one off, the resend branch was
    planned before the switch was known: where the email table held one campaign's rows (statistics:
    `campaign_id = ?` is every row), a sequential scan of the whole table in every chunk of every start."""
    source = sending_campaign(marketer, size=30)
    ledger.materialise(campaign_id=source.pk, now=timezone.now())
    Email.objects.filter(campaign=source).update(status=S.SENT)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE campaigns_email")
    to_lists = CampaignFactory(owner=marketer, lists=list(source.lists.all()))
    resend = CampaignFactory(owner=marketer, source_campaign=source, source_rule=Campaign.SourceRule.NOT_OPENED)

    def plan(campaign):
        sql, params = ledger.materialise_statement(campaign_id=campaign.pk, now=timezone.now())
        with connection.cursor() as cursor:
            cursor.execute("EXPLAIN " + sql, params)
            return "\n".join(row[0] for row in cursor.fetchall())

    lists_plan, resend_plan = plan(to_lists), plan(resend)
    # The insert's own target is named in the plan's first line; no read of campaigns_email follows.
    assert "on campaigns_email" not in lists_plan.split("\n", 1)[1], lists_plan
    assert "campaigns_contactlist_contacts" in lists_plan and "campaigns_contactlist_contacts" not in resend_plan
    assert ledger.materialise(campaign_id=to_lists.pk, now=timezone.now()) == 30
    assert ledger.materialise(campaign_id=resend.pk, now=timezone.now()) == 30


def test_materialise_runs_no_subquery_per_contact(marketer):
    # A subquery correlated with the contact row ran once per contact: 34 s to start a campaign
    # of 20,000 (bench/throughput.py). PostgreSQL shows such a subquery as a "SubPlan"; the
    # campaign's owner, looked up once, is an "InitPlan".
    campaign = CampaignFactory(owner=marketer, lists=[ContactListFactory(owner=marketer, contacts=[])])
    sql, params = ledger.materialise_statement(campaign_id=campaign.pk, now=timezone.now())
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN " + sql, params)
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert "SubPlan" not in plan, plan
    assert "InitPlan" in plan, plan


# --- step 3: return due rows ----------------------------------------------------------------------


def test_return_due_returns_due_deferred_and_lease_expired_queued_rows_only(marketer):
    now = timezone.now()
    campaign = CampaignFactory(owner=marketer, status=C.SENDING)
    other_batch = "6d7c2a8e-1f9b-4c1a-9f55-3e2a1b0c9d8e"

    def row(status, **fields):
        return EmailFactory(campaign=campaign, status=status, **fields)

    due = row(S.DEFERRED, attempts=1, next_attempt_at=now - timedelta(seconds=1))
    due_exactly = row(S.DEFERRED, attempts=2, next_attempt_at=now)
    not_due = row(S.DEFERRED, attempts=1, next_attempt_at=now + timedelta(seconds=5))
    # A queued row is taken back only the fence's margin after its lease ended (lease.py).
    expired = row(S.QUEUED, batch_id=other_batch, lease_expires_at=now - timedelta(seconds=lease.margin()))
    within_margin = row(S.QUEUED, batch_id=other_batch, lease_expires_at=now - timedelta(seconds=lease.margin() - 1))
    leased = row(S.QUEUED, batch_id=other_batch, lease_expires_at=now + timedelta(minutes=4))
    sent = row(S.SENT, sent_at=now - timedelta(minutes=1))

    assert ledger.return_due(now=now) == (2, 1)

    def state(email):
        email.refresh_from_db()
        return email.status, email.attempts, email.next_attempt_at, email.batch_id, email.lease_expires_at

    assert state(due) == (S.PENDING, 1, None, None, None)  # attempts kept: the ladder goes on
    assert state(due_exactly)[:3] == (S.PENDING, 2, None)
    assert state(not_due)[0] == S.DEFERRED
    assert state(expired) == (S.PENDING, 0, None, None, None)
    assert state(leased)[0] == S.QUEUED and str(state(leased)[3]) == other_batch
    assert state(within_margin)[0] == S.QUEUED and str(state(within_margin)[3]) == other_batch
    assert state(sent)[0] == S.SENT


def test_return_due_cancels_the_open_rows_of_a_cancelled_campaign(marketer):
    now = timezone.now()
    campaign = CampaignFactory(owner=marketer, status=C.CANCELLED)
    deferred = EmailFactory(campaign=campaign, status=S.DEFERRED, next_attempt_at=now - timedelta(seconds=1))
    expired = EmailFactory(campaign=campaign, status=S.QUEUED, lease_expires_at=now - timedelta(seconds=lease.margin()))

    ledger.return_due(now=now)

    assert Email.objects.get(pk=deferred.pk).status == S.CANCELLED
    assert Email.objects.get(pk=expired.pk).status == S.CANCELLED


def test_a_tick_returns_rows_and_claims_them_again(marketer):
    now = timezone.now()
    campaign = sending_campaign(marketer, size=2, now=now)
    Email.objects.filter(campaign=campaign).update(status=S.DEFERRED, attempts=1, next_attempt_at=now)
    claimed = []

    report = dispatcher.tick(now=now, enqueue=claimed.append)

    assert report.returned == 2 and report.claimed == 2
    assert set(Email.objects.filter(campaign=campaign).values_list("status", flat=True)) == {S.QUEUED}
    lease = Email.objects.filter(campaign=campaign).first().lease_expires_at
    assert lease == now + timedelta(seconds=300)


# --- step 4: rate limits ----------------------------------------------------------------------------


def test_sixty_a_minute_claims_ten_for_a_ten_second_window_and_nothing_more_while_in_flight(marketer):
    now = timezone.now()
    campaign = sending_campaign(marketer, size=30, now=now, max_per_minute=60)
    claimed = []

    first = dispatcher.tick(now=now, enqueue=claimed.append)
    second = dispatcher.tick(now=now + timedelta(seconds=1), enqueue=claimed.append)

    assert first.claimed == 10 and len(first.batches) == 1
    assert second.ran and second.claimed == 0
    assert Email.objects.filter(campaign=campaign, status=S.QUEUED).count() == 10
    # Oldest first.
    oldest = Email.objects.filter(campaign=campaign).order_by("id").values_list("id", flat=True)[:10]
    assert claimed_ids(claimed) == list(oldest)

    # Once sent, the next window gets its ten; the minute's 60 is the other bound.
    Email.objects.filter(campaign=campaign, status=S.QUEUED).update(
        status=S.SENT, sent_at=now + timedelta(seconds=2), batch_id=None
    )
    assert dispatcher.tick(now=now + timedelta(seconds=10), enqueue=claimed.append).claimed == 10


def _already_sent(account, *ages):
    """Sent rows of another campaign on the same account, `ages` ago."""
    now = timezone.now()
    campaign = CampaignFactory(owner=account.owner, smtp_account=account, status=C.COMPLETED)
    for age in ages:
        EmailFactory(campaign=campaign, status=S.SENT, sent_at=now - age)


def test_max_per_hour_caps_the_claim(marketer):
    account = SmtpAccountFactory(owner=marketer, max_per_minute=600, max_per_hour=7, max_per_day=1000)
    _already_sent(account, timedelta(minutes=30), timedelta(minutes=20), timedelta(minutes=2), timedelta(hours=2))
    campaign = sending_campaign(marketer, size=20, account=account)
    claimed = []

    report = dispatcher.tick(enqueue=claimed.append)

    assert report.claimed == 4  # 7 an hour, 3 sent within the last hour (the one 2 h ago no longer counts)
    assert Email.objects.filter(campaign=campaign, status=S.QUEUED).count() == 4


def test_max_per_day_caps_the_claim(marketer):
    account = SmtpAccountFactory(owner=marketer, max_per_minute=600, max_per_hour=1000, max_per_day=5)
    _already_sent(account, timedelta(hours=3), timedelta(hours=20), timedelta(hours=25))
    sending_campaign(marketer, size=20, account=account)

    assert dispatcher.tick(enqueue=[].append).claimed == 3


def test_a_paused_account_claims_nothing(marketer):
    now = timezone.now()
    campaign = sending_campaign(marketer, size=3, now=now)
    SmtpAccountState.objects.filter(account=campaign.smtp_account).update(paused_until=now + timedelta(minutes=5))

    assert dispatcher.tick(now=now, enqueue=[].append).claimed == 0
    assert dispatcher.tick(now=now + timedelta(minutes=5, seconds=1), enqueue=[].append).claimed == 3


# --- step 4: accounts take turns -------------------------------------------------------------------


def test_accounts_take_turns_one_batch_each_then_a_claim_statement_each(marketer, other_marketer):
    now = timezone.now()
    alice = sending_campaign(marketer, size=30, now=now, max_per_minute=120, batch_size=2)
    mallory = sending_campaign(other_marketer, size=30, now=now, max_per_minute=120, batch_size=2)
    a, m = alice.smtp_account_id, mallory.smtp_account_id

    report = dispatcher.tick(now=now, enqueue=[].append)

    # 20 each within the window (120/min over 10 s): a batch each, then the other nine each in one turn
    # (a statement's worth is ten).
    order = [account for account, _, _ in report.batches]
    first, second = order[0], order[1]
    assert {first, second} == {a, m}
    assert order == [first, second] + [first] * 9 + [second] * 9
    assert all(size == 2 for _, _, size in report.batches)


def test_a_claim_statement_splits_its_rows_into_batches_in_id_order(marketer):
    now = timezone.now()
    campaign = sending_campaign(marketer, size=23, now=now)
    pending = list(Email.objects.filter(campaign=campaign).order_by("id").values_list("id", flat=True))
    with CaptureQueriesContext(connection) as queries:
        batches, last_id = ledger.claim_as_batches(campaign_ids=[campaign.pk], limit=23, batch_size=5, now=now)

    assert len(queries.captured_queries) == 1
    assert [count for _, count in batches] == [5, 5, 5, 5, 3]
    assert last_id == pending[-1]
    for n, (batch_id, _) in enumerate(batches):
        assert claimed_ids([batch_id]) == pending[n * 5 : (n + 1) * 5]
    rows = Email.objects.filter(campaign=campaign)
    assert {row.status for row in rows} == {S.QUEUED} and all(row.message_id for row in rows)


def test_a_large_campaign_does_not_starve_a_small_one(marketer, other_marketer):
    now = timezone.now()
    big = sending_campaign(marketer, size=40, now=now, batch_size=5)
    small = sending_campaign(other_marketer, size=3, now=now, batch_size=5)

    report = dispatcher.tick(now=now, enqueue=[].append)

    order = [account for account, _, _ in report.batches]
    assert small.smtp_account_id in order[:2]
    assert Email.objects.filter(campaign=small, status=S.QUEUED).count() == 3
    assert Email.objects.filter(campaign=big, status=S.QUEUED).count() == 40


# --- step 5: completion ----------------------------------------------------------------------------


def test_campaigns_whose_rows_are_all_final_become_completed(marketer):
    now = timezone.now()
    done = CampaignFactory(owner=marketer, status=C.SENDING, started_at=now)
    for status in (S.SENT, S.FAILED, S.CANCELLED):
        EmailFactory(campaign=done, status=status)
    waiting = CampaignFactory(owner=marketer, status=C.SENDING, started_at=now)
    EmailFactory(campaign=waiting, status=S.SENT)
    EmailFactory(campaign=waiting, status=S.DEFERRED, next_attempt_at=now + timedelta(hours=1))
    paused = CampaignFactory(owner=marketer, status=C.PAUSED, started_at=now)
    EmailFactory(campaign=paused, status=S.SENT)

    report = dispatcher.tick(now=now, enqueue=[].append)

    assert report.completed == 1
    done.refresh_from_db(), waiting.refresh_from_db(), paused.refresh_from_db()
    assert (done.status, done.completed_at) == (C.COMPLETED, now)
    assert waiting.status == C.SENDING and waiting.completed_at is None
    assert paused.status == C.PAUSED


def test_a_due_scheduled_campaign_starts_and_a_future_one_waits(marketer):
    now = timezone.now()
    lists = [ContactListFactory(owner=marketer, contacts=[ContactFactory(owner=marketer) for _ in range(2)])]
    due = CampaignFactory(owner=marketer, lists=lists)
    later = CampaignFactory(owner=marketer, lists=lists)
    lifecycle.schedule(campaign=due, at=now - timedelta(seconds=1), now=now)
    lifecycle.schedule(campaign=later, at=now + timedelta(minutes=1), now=now)

    report = dispatcher.tick(now=now, enqueue=[].append)

    assert report.started == [due.pk]
    due.refresh_from_db(), later.refresh_from_db()
    assert (due.status, due.started_at) == (C.SENDING, now)
    assert due.emails.count() == 2 and later.emails.count() == 0
    assert later.status == C.SCHEDULED


# --- the schedule in django-celery-beat ------------------------------------------------------------


def test_setup_schedules_creates_the_ten_second_task_once_and_keeps_an_edited_interval(db):
    call_command("setup_schedules", stdout=_Sink())
    call_command("setup_schedules", stdout=_Sink())

    task = PeriodicTask.objects.get(name=dispatcher.DISPATCH_TASK_NAME)
    assert PeriodicTask.objects.filter(task="campaigns.dispatch").count() == 1
    assert (task.interval.every, task.interval.period, task.enabled) == (10, IntervalSchedule.SECONDS, True)
    assert dispatcher.dispatch_interval_seconds() == 10

    task.interval = IntervalSchedule.objects.create(every=30, period=IntervalSchedule.SECONDS)
    task.save()
    out = _Sink()
    call_command("setup_schedules", stdout=out)

    task.refresh_from_db()
    assert task.interval.every == 30
    assert "left as it is" in out.text


def test_dispatch_interval_follows_an_edited_interval_and_sizes_the_claim(marketer):
    call_command("setup_schedules", stdout=_Sink())
    task = PeriodicTask.objects.get(name=dispatcher.DISPATCH_TASK_NAME)
    task.interval = IntervalSchedule.objects.create(every=1, period=IntervalSchedule.MINUTES)
    task.save()
    now = timezone.now()
    sending_campaign(marketer, size=100, now=now, max_per_minute=60)

    assert dispatcher.dispatch_interval_seconds() == 60
    assert dispatcher.tick(now=now, enqueue=[].append).claimed == 60


class _Sink:
    def __init__(self):
        self.text = ""

    def write(self, s, *args, **kwargs):
        self.text += s

    def flush(self):
        pass


# --- step 1: one tick at a time --------------------------------------------------------------------


def test_a_second_tick_while_one_runs_returns_ran_false(marketer):
    now = timezone.now()
    sending_campaign(marketer, size=3, now=now)
    inner = []

    def enqueue(batch_id):
        # The first tick holds the lock while it enqueues: a tick started now must not run.
        inner.append(dispatcher.tick(now=now + timedelta(seconds=1), enqueue=[].append))

    outer = dispatcher.tick(now=now, enqueue=enqueue)

    assert outer.ran and outer.claimed == 3
    assert [r.ran for r in inner] == [False]
    assert inner[0].claimed == 0
    state = DispatcherState.objects.get(pk=1)
    assert state.locked_by == "" and state.locked_until is None
    assert state.last_tick_claimed == 3
    assert dispatcher.tick(now=now + timedelta(seconds=2), enqueue=[].append).ran


def test_a_lock_left_by_a_crashed_tick_expires(db):
    now = timezone.now()
    DispatcherState.objects.filter(pk=1).update(locked_by="crashed", locked_until=now + timedelta(seconds=60))

    assert not dispatcher.tick(now=now, enqueue=[].append).ran
    assert dispatcher.tick(now=now + timedelta(seconds=61), enqueue=[].append).ran


def test_a_missing_lock_row_is_made_again_rather_than_stopping_all_sending(marketer):
    # e.g. after `manage.py flush`: without the row every tick would report "another tick is running".
    now = timezone.now()
    sending_campaign(marketer, size=2, now=now)
    DispatcherState.objects.all().delete()

    report = dispatcher.tick(now=now, enqueue=[].append)

    assert report.ran and report.claimed == 2
    assert DispatcherState.objects.get(pk=1).last_tick_claimed == 2


def test_the_lock_is_released_when_a_tick_fails(marketer):
    now = timezone.now()
    sending_campaign(marketer, size=1, now=now)

    def broken_broker(batch_id):
        raise ConnectionError("broker down")

    with pytest.raises(ConnectionError):
        dispatcher.tick(now=now, enqueue=broken_broker)

    assert dispatcher.tick(now=now + timedelta(seconds=1), enqueue=[].append).ran


def test_each_batch_goes_to_the_workers_as_soon_as_it_is_claimed(marketer):
    """A large campaign's first batch is sending while the tick still claims the rest; the others go
    as soon as the statement that claimed them commits (up to ten batches a statement)."""
    now = timezone.now()
    campaign = sending_campaign(marketer, size=12, now=now, batch_size=5)
    queued_when_enqueued = []

    def enqueue(batch_id):
        queued_when_enqueued.append(Email.objects.filter(campaign=campaign, status=Email.Status.QUEUED).count())

    report = dispatcher.tick(now=now, enqueue=enqueue)

    assert [size for _, _, size in report.batches] == [5, 5, 2]
    assert queued_when_enqueued == [5, 12, 12]


def test_a_claim_statement_writes_at_most_its_batches(marketer):
    campaign = sending_campaign(marketer, size=5)
    too_many = 5 * ledger.CLAIM_BATCHES_PER_STATEMENT + 1
    with pytest.raises(ValueError):
        ledger.claim_as_batches(campaign_ids=[campaign.pk], limit=too_many, batch_size=5, now=timezone.now())


def test_the_dispatch_command_runs_one_tick(marketer):
    sending_campaign(marketer, size=0)
    out = _Sink()
    call_command("dispatch", stdout=out)
    assert "claimed 0 email(s)" in out.text


def test_the_same_address_in_another_campaign_is_no_conflict(marketer):
    # Materialise is scoped to the campaign: another campaign's rows for the same address are not conflicts.
    contact = ContactFactory(owner=marketer, email="same@example.org")
    lists = [ContactListFactory(owner=marketer, contacts=[contact])]
    first = CampaignFactory(owner=marketer, lists=lists)
    second = CampaignFactory(owner=marketer, lists=lists)
    now = timezone.now()
    assert ledger.materialise(campaign_id=first.pk, now=now) == 1
    assert ledger.materialise(campaign_id=second.pk, now=now) == 1
