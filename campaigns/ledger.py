"""Every transition of an Email row, and nothing else writes Email.status.

Each transition is one conditional UPDATE on the status it expects (and, for a
worker, on its batch id). Zero rows updated means someone else owns the row:
that is logged and never overwritten.
"""

import logging
import select
import time
import uuid
import weakref
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from types import TracebackType
from typing import Any

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, DatabaseError, connection, connections
from django.db.models import Exists, F, Min, OuterRef, Q, QuerySet
from psycopg import Connection, pq

from campaigns import lease
from campaigns.models import BatchTake, Campaign, CampaignTally, Email
from campaigns.selectors import segments
from contacts.models import Contact, ContactList, SuppressedHash
from contacts.selectors import suppressed

log = logging.getLogger(__name__)
S = Email.Status
OPEN_STATUSES = (S.PENDING, S.QUEUED, S.DEFERRED)
# The parameters of the statements here, as psycopg adapts them: ids, statuses, flags, times, batch ids.
SqlParams = list[int | str | bool | datetime | uuid.UUID | list[uuid.UUID] | None]
# A queued row as sending reads it (batch_rows): id, campaign_id, contact_id, to_email, to_name,
# message_id, and the contact's attributes as stored (JSON text; None without a contact).
QueuedRow = tuple[int, int, int | None, str, str, str, str | None]


# --- materialising recipients -----------------------------------------------


def materialise(*, campaign_id: int, now: datetime) -> int:
    """Insert one pending Email per subscribed contact of the campaign's lists and segments, in one statement.

    Contacts are unique per owner and address, so a contact on several lists is
    one row; ON CONFLICT keeps anyone already in the campaign (sent or not)
    untouched, which also makes extending a running campaign safe. A large audience is
    written in chunks instead (materialise_chunk), each its own transaction.
    """
    sql, params = materialise_statement(campaign_id=campaign_id, now=now)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        created: int = cursor.rowcount
        return created


def materialise_chunk(*, campaign_id: int, after_contact_id: int, size: int, now: datetime) -> tuple[int, int | None]:
    """The recipients among the owner's next `size` subscribed contacts after `after_contact_id`,
    in contact-id order. Returns (rows created, the last contact id covered), that id None when
    this chunk reached the owner's last contact (nothing is left to write).

    The chunk is a range of contact ids, not of rows created: rows skipped by ON CONFLICT and
    contacts off the campaign's lists still move the cursor, so each contact is looked at once
    and the next chunk starts right after this one, whoever runs it.
    """
    through = _nth_contact_after(campaign_id=campaign_id, after_contact_id=after_contact_id, n=size)
    sql, params = materialise_statement(
        campaign_id=campaign_id, now=now, after_contact_id=after_contact_id, through_contact_id=through
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        created: int = cursor.rowcount
        return created, through


def _nth_contact_after(*, campaign_id: int, after_contact_id: int, n: int) -> int | None:
    """The id of the owner's n-th subscribed contact after `after_contact_id`, or None when
    there are fewer (the chunk then runs to the end)."""
    sql = f"""
        SELECT c.id FROM {Contact._meta.db_table} c
        WHERE c.owner_id = (SELECT owner_id FROM {Campaign._meta.db_table} WHERE id = %s)
          AND c.status = %s AND c.id > %s
        ORDER BY c.id LIMIT 1 OFFSET %s
    """
    with connection.cursor() as cursor:
        cursor.execute(sql, [campaign_id, Contact.Status.SUBSCRIBED, after_contact_id, n - 1])
        row = cursor.fetchone()
    return row[0] if row else None


def materialise_statement(
    *, campaign_id: int, now: datetime, after_contact_id: int = 0, through_contact_id: int | None = None
) -> tuple[str, SqlParams]:
    """The INSERT ... SELECT of the campaign's recipients (those in the contact-id range, when given).

    Its audience is the campaign's lists and segments or, for a resend, its source's recipients by its
    rule: only the branch that applies is in the statement (one read of the campaign row first). Both
    branches with an InitPlan switching one off cost a scan of the whole email table per chunk: planned
    before the switch is known, the resend branch's `campaign_id = (subquery)` is a sequential scan
    wherever the table holds few campaigns, in every chunk of every start.

    No address its owner erased while suppressed is written (suppressed.erased_sql), however its contact
    came back: the entry points create such a contact suppressed, and a row written by hand is left out here.
    """
    facts = (
        Campaign.objects.filter(pk=campaign_id)
        .annotate(owner_erased=Exists(SuppressedHash.objects.filter(owner_id=OuterRef("owner_id"))))
        .values_list("source_campaign_id", "owner_erased")
        .first()
    )
    resend, owner_erased = (facts[0] is not None, facts[1]) if facts else (False, False)
    email, contact = Email._meta.db_table, Contact._meta.db_table
    campaign = Campaign._meta.db_table

    def contact_range(column: str) -> str:
        return f"{column} > %s" + (f" AND {column} <= %s" if through_contact_id is not None else "")

    if resend:
        audience, audience_params = _resend_audience(campaign_id=campaign_id)
    else:
        audience, audience_params = _lists_and_segments_audience(campaign_id=campaign_id, now=now)
    # Only for an owner who erased someone: the hashes cost every audience row two SHA-256 passes.
    not_erased = ""
    not_erased_params: SqlParams = []
    if owner_erased:
        erased, not_erased_params = suppressed.erased_sql(owner_column="c.owner_id", address_column="c.email")
        not_erased = f"AND NOT {erased}"
    sql = f"""
        INSERT INTO {email} (campaign_id, contact_id, to_email, to_name, status, attempts, message_id,
                             smtp_response, failure_class, open_count, machine_open, click_count,
                             possible_duplicate, created_at, updated_at)
        SELECT %s, c.id, c.email, c.name, %s, 0, '', '', '', 0, %s, 0, %s, %s, %s
        FROM {contact} c
        WHERE c.owner_id = (SELECT owner_id FROM {campaign} WHERE id = %s)
          AND c.status = %s
          AND c.id IN (SELECT audience.contact_id FROM ({audience}) AS audience
                       WHERE {contact_range("audience.contact_id")})
          AND {contact_range("c.id")}
          {not_erased}
        ON CONFLICT (campaign_id, to_email) DO NOTHING
    """
    # Subscribed contacts only: every other status is suppressed (Contact.SUPPRESSED_STATUSES), and an
    # equality keeps the (owner, status) index usable.
    # The subquery names the owner by the campaign, not by the outer contact row: correlated
    # with c.owner_id, PostgreSQL would run it once per contact.
    # The outer owner condition keeps a list, segment or source of someone else's from reaching
    # anyone but the campaign owner's contacts.
    params: SqlParams = [
        campaign_id,
        S.PENDING,
        False,
        False,
        now,
        now,
        campaign_id,
        Contact.Status.SUBSCRIBED,
        *audience_params,
    ]
    # A chunk of the preparation (materialise_chunk) is a range of contact ids; the whole audience is 0..end.
    # The range is on the audience too: PostgreSQL pushes it into each branch (an index range scan of the
    # list memberships), where the outer range alone would leave it hashing every member of the lists per
    # chunk, a cost that grows with the list.
    bounds = [after_contact_id] + ([through_contact_id] if through_contact_id is not None else [])
    params += bounds + bounds + not_erased_params
    return sql, params


def _lists_and_segments_audience(*, campaign_id: int, now: datetime) -> tuple[str, SqlParams]:
    """Contact ids on the campaign's own lists, then one UNION ALL branch per segment (repeats are
    folded by the outer IN)."""
    membership = ContactList.contacts.through._meta.db_table
    campaign_lists = Campaign.lists.through._meta.db_table
    sql = f"""
              SELECT m.contact_id FROM {membership} m
              JOIN {campaign_lists} cl ON cl.contactlist_id = m.contactlist_id AND cl.campaign_id = %s
              JOIN {ContactList._meta.db_table} l ON l.id = m.contactlist_id
              WHERE l.owner_id = (SELECT owner_id FROM {Campaign._meta.db_table} WHERE id = %s)"""
    segment_branches, segment_params = _segment_branches(campaign_id=campaign_id, now=now)
    return sql + segment_branches, [campaign_id, campaign_id, *segment_params]


def _resend_audience(*, campaign_id: int) -> tuple[str, SqlParams]:
    """Contact ids the source campaign was sent to, by the resend's rule. "Not opened" is
    first_opened_at: a reader's open only, machine opens (Apple Mail Privacy Protection) never set it."""
    campaign = Campaign._meta.db_table
    sql = f"""
              SELECT e.contact_id FROM {Email._meta.db_table} e
              WHERE e.campaign_id = (SELECT source_campaign_id FROM {campaign} WHERE id = %s AND source_rule = %s)
                AND e.status = %s AND e.first_opened_at IS NULL"""
    return sql, [campaign_id, Campaign.SourceRule.NOT_OPENED, S.SENT]


def _segment_branches(*, campaign_id: int, now: datetime) -> tuple[str, SqlParams]:
    """One more UNION ALL branch of contact ids per segment of the campaign: the segment's own queryset
    (campaigns.selectors.segments, the one definition of who a segment is) as SQL, so the start stays
    one set-based statement. A resend has none (its source decides), nor does a campaign without segments."""
    sql = ""
    params: SqlParams = []
    for ids in segments.campaign_segment_contact_ids(campaign_id=campaign_id, now=now):
        branch_sql, branch_params = ids.query.sql_with_params()
        sql += f"\n              UNION ALL\n              SELECT s.id FROM ({branch_sql}) s"
        params += branch_params
    return sql, params


# --- dispatcher transitions -------------------------------------------------


def return_due(*, now: datetime) -> tuple[int, int]:
    """Due deferred rows and lease-expired queued rows go back to pending.

    A queued row is taken back only lease.margin() after its lease ended (the fence: its worker may
    have begun a send until the margin before that end). The first row still queued in a batch a
    worker took is the one it may have been sending (it sends in id order, and records each result
    before the next content goes out): it may have been delivered already, so it is flagged
    possible_duplicate and its next send counts as one. An untaken batch sent nothing.
    Rows of a cancelled campaign are cancelled instead, so none waits forever: lease-expired queued
    ones here, unsent ones a chunk at a time (cancel_unsent_of_cancelled).
    """
    expired_before = lease.reclaim_before(now)
    Email.objects.filter(
        campaign__status=Campaign.Status.CANCELLED, status=S.QUEUED, lease_expires_at__lte=expired_before
    ).update(status=S.CANCELLED, batch_id=None, lease_expires_at=None, updated_at=now)
    cancel_unsent_of_cancelled(now=now)
    deferred = Email.objects.filter(status=S.DEFERRED, next_attempt_at__lte=now).update(
        status=S.PENDING, next_attempt_at=None, updated_at=now
    )
    expired = Email.objects.filter(status=S.QUEUED, lease_expires_at__lte=expired_before)
    maybe_sending = (
        expired.filter(Exists(BatchTake.objects.filter(batch_id=OuterRef("batch_id"))))
        .values("batch_id")
        .annotate(first=Min("id"))
        .values("first")
    )
    taken_back = expired.filter(id__in=maybe_sending).update(
        status=S.PENDING,
        batch_id=None,
        lease_expires_at=None,
        possible_duplicate=True,
        updated_at=now,
    )
    taken_back += expired.update(status=S.PENDING, batch_id=None, lease_expires_at=None, updated_at=now)
    return deferred, taken_back


def claim(
    *, campaign_ids: list[int], limit: int, now: datetime, after_id: int = 0
) -> tuple[uuid.UUID | None, int, int]:
    """Claim up to `limit` pending rows of these campaigns, oldest first, as one batch.
    Returns (batch_id, count, last_id); see claim_as_batches."""
    batches, last_id = claim_as_batches(
        campaign_ids=campaign_ids, limit=limit, batch_size=limit, now=now, after_id=after_id
    )
    if not batches:
        return None, 0, after_id
    ((batch_id, count),) = batches
    return batch_id, count, last_id


# Batches a claim statement writes at most: each row finds its batch by its place among the picked
# ids, a search of the array, so a statement's cost grows with the square of its rows.
CLAIM_BATCHES_PER_STATEMENT = 10


def claim_as_batches(
    *,
    campaign_ids: list[int],
    limit: int,
    batch_size: int,
    now: datetime,
    after_id: int = 0,
    message_id_domain: str = "",
) -> tuple[list[tuple[uuid.UUID, int]], int]:
    """Claim up to `limit` pending rows of these campaigns, oldest first, as batches of `batch_size`
    (the last one smaller), in id order, in one statement. Returns ([(batch_id, count)], last_id).
    `limit` is at most CLAIM_BATCHES_PER_STATEMENT batches.

    Each row without a Message-ID gets one here, in `message_id_domain` (the sending account's
    domain; MESSAGE_ID_DOMAIN when blank), stored before anything is sent; a retry keeps the one it
    has. SKIP LOCKED lets two dispatchers claim side by side without waiting on or taking each
    other's rows. One statement claims several batches, so a tick
    claiming a fast account's many batches pays for few statements (planning, round trips,
    index descents), not one a batch. A tick
    claiming more passes the last id it claimed as `after_id`, so each claim starts where the previous
    one ended instead of stepping again over the rows claimed before it (still in the index until vacuum).
    """
    if limit <= 0 or not campaign_ids:
        return [], after_id
    if limit > batch_size * CLAIM_BATCHES_PER_STATEMENT:
        raise ValueError(f"a claim statement writes at most {CLAIM_BATCHES_PER_STATEMENT} batches of {batch_size}")
    batch_ids = [uuid.uuid4() for _ in range(-(-limit // batch_size))]
    sql, params = claim_statement(
        campaign_ids=campaign_ids,
        limit=limit,
        now=now,
        after_id=after_id,
        batch_ids=batch_ids,
        batch_size=batch_size,
        message_id_domain=message_id_domain,
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        ids = [row[0] for row in cursor.fetchall()]
    if not ids:
        return [], after_id
    # The statement split the rows in id order, batch_size to a batch: so many in each, in that order.
    batches = [
        (batch_id, min(batch_size, len(ids) - i * batch_size))
        for i, batch_id in enumerate(batch_ids)
        if len(ids) > i * batch_size
    ]
    return batches, max(ids)


def claim_statement(
    *,
    campaign_ids: list[int],
    limit: int,
    now: datetime,
    after_id: int,
    batch_ids: list[uuid.UUID],
    batch_size: int,
    message_id_domain: str = "",
) -> tuple[str, SqlParams]:
    placeholders = ", ".join(["%s"] * len(campaign_ids))
    table = Email._meta.db_table
    # MATERIALIZED: the rows are picked once. As a plain `id IN (SELECT ... LIMIT n)` PostgreSQL
    # may run the subquery again while updating, and claim more rows than asked for.
    # PostgreSQL then updates the picked rows by primary key alone: they are locked and pending
    # (FOR UPDATE rechecks the condition on the row it locks), and a status condition here would let
    # the planner, with statistics taken before a new campaign's rows existed ("one pending
    # row"), join the picked ids against a scan of every pending row: every claim would read them
    # all. The picked ids, sorted, are one array (an InitPlan, computed once): each row's batch is
    # its place in it, batch_size to a batch.
    sql = f"""
        WITH picked AS MATERIALIZED (
            SELECT id FROM {table}
            WHERE status = %s AND campaign_id IN ({placeholders}) AND id > %s
            ORDER BY id LIMIT %s FOR UPDATE SKIP LOCKED
        )
        UPDATE {table}
        SET status = %s,
            batch_id = (%s::uuid[])[(array_position(ARRAY(SELECT id FROM picked ORDER BY id), id) - 1) / %s + 1],
            lease_expires_at = %s, updated_at = %s,
            message_id = CASE WHEN message_id = '' THEN '<' || CAST(id AS TEXT) || %s ELSE message_id END
        WHERE id = ANY(ARRAY(SELECT id FROM picked))
        RETURNING id
    """
    domain = message_id_domain or settings.MESSAGE_ID_DOMAIN or "localhost"
    message_id_end = f".{uuid.uuid4().hex[:16]}@{domain}>"
    lease = now + timedelta(seconds=settings.EMAIL_LEASE_SECONDS)
    params: SqlParams = [
        S.PENDING,
        *campaign_ids,
        after_id,
        limit,
        S.QUEUED,
        list(batch_ids),
        batch_size,
        lease,
        now,
        message_id_end,
    ]
    return sql, params


def take_batch(*, batch_id: uuid.UUID, now: datetime) -> bool:
    """A worker takes a claimed batch: one row inserted, the batch's Email rows untouched.

    A send_batch task delivered twice finds the batch already taken and sends nothing.
    Returns whether this worker took it. The worker's transitions are then guarded by the
    batch id itself: a row returned to pending (lease expired) or claimed again has another.
    """
    sql = f"""
        INSERT INTO {BatchTake._meta.db_table} (batch_id, taken_at) VALUES (%s, %s)
        ON CONFLICT (batch_id) DO NOTHING
    """
    with connection.cursor() as cursor:
        cursor.execute(sql, [batch_id, now])
        taken: bool = cursor.rowcount == 1
        return taken


def forget_takes(*, now: datetime) -> int:
    """Takes older than a day go: by then no worker holds their batch (its rows were sent,
    returned at the end of their lease, or moved to a continuation batch), so a late second
    delivery of the task finds no row still queued under that id and sends nothing either."""
    return BatchTake.objects.filter(taken_at__lt=now - timedelta(days=1)).delete()[0]


def batch_rows(*, batch_id: uuid.UUID) -> tuple[list[QueuedRow], datetime | None]:
    """What sending reads of a taken batch's queued rows, in id order: (id, campaign_id,
    contact_id, to_email, to_name, message_id, the contact's attributes as stored), and the
    earliest of their leases (None when no row is left). The lease was set at the claim (or at
    a rebatch); the sender renews it when little of it is left (campaigns.lease).
    """
    with connection.cursor() as cursor:
        cursor.execute(_BATCH_ROWS, [batch_id, S.QUEUED])
        rows = cursor.fetchall()
    leases = [row[-1] for row in rows]
    return [row[:-1] for row in rows], min(leases) if leases else None


_BATCH_ROWS = f"""
    SELECT e.id, e.campaign_id, e.contact_id, e.to_email, e.to_name, e.message_id, c.attributes, e.lease_expires_at
    FROM {Email._meta.db_table} e LEFT JOIN {Contact._meta.db_table} c ON c.id = e.contact_id
    WHERE e.batch_id = %s AND e.status = %s ORDER BY e.id
"""


def rebatch(*, batch_id: uuid.UUID, email_ids: list[int], now: datetime, hold_seconds: float) -> uuid.UUID | None:
    """Move a worker's unsent rows to a new batch due later; returns its id, or None."""
    continuation = uuid.uuid4()
    moved = Email.objects.filter(batch_id=batch_id, status=S.QUEUED, id__in=email_ids).update(
        batch_id=continuation,
        lease_expires_at=now + timedelta(seconds=hold_seconds + settings.EMAIL_LEASE_SECONDS),
        updated_at=now,
    )
    return continuation if moved else None


def renew_lease(*, batch_id: uuid.UUID, now: datetime) -> set[int]:
    """A fresh lease for the batch's queued rows; returns the ids of the rows renewed (those
    still the worker's: a row returned to pending meanwhile is not, and must not be sent)."""
    sql = f"""
        UPDATE {Email._meta.db_table} SET lease_expires_at = %s WHERE batch_id = %s AND status = %s RETURNING id
    """
    with connection.cursor() as cursor:
        lease = now + timedelta(seconds=settings.EMAIL_LEASE_SECONDS)
        cursor.execute(sql, [lease, batch_id, S.QUEUED])
        return {row[0] for row in cursor.fetchall()}


@contextmanager
def ledger_commits() -> Iterator[None]:
    """The sending engine's own commits (a dispatcher tick, a worker's batch) skip the wait
    for the disk flush, unless EMAIL_RESULTS_SYNCHRONOUS_COMMIT is set.

    A killed worker or dispatcher loses nothing by this: its commits are already in the
    server. Only a crash of PostgreSQL itself can lose the last fraction of a second of
    commits (three times wal_writer_delay at most), and each is safe to lose: a lost claim
    or start leaves the rows pending (the enqueued batch then finds nothing to take), a lost
    result sends that message again after its lease, a duplicate bounded like a killed
    worker's. The gain is one disk flush less per commit, and a tick claiming many batches
    commits often (measured in BENCHMARKS.md, Costs behind the code).
    """
    if settings.EMAIL_RESULTS_SYNCHRONOUS_COMMIT:
        yield
        return
    with connection.cursor() as cursor:
        cursor.execute("SET synchronous_commit TO off")
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute("SET synchronous_commit TO DEFAULT")


# --- worker transitions (each guarded by the worker's batch id) --------------


def _owned(email_id: int, batch_id: uuid.UUID) -> QuerySet[Email]:
    return Email.objects.filter(id=email_id, status=S.QUEUED, batch_id=batch_id)


def _report(email_id: int, transition: str, updated: int) -> bool:
    if not updated:
        log.warning("email %s: %s skipped, the row is no longer this worker's", email_id, transition)
    return bool(updated)


def set_message_id(*, email_id: int, batch_id: uuid.UUID, message_id: str) -> int:
    return _owned(email_id, batch_id).filter(message_id="").update(message_id=message_id)


def flag_possible_duplicate(*, email_id: int, batch_id: uuid.UUID) -> int:
    """The connection was lost after DATA: the server may have taken the message."""
    return _owned(email_id, batch_id).update(possible_duplicate=True)


_MARK_SENT = f"""
    UPDATE {Email._meta.db_table}
    SET status = '{S.SENT}', sent_at = %s, updated_at = %s, smtp_code = %s, smtp_response = %s, failure_class = '',
        attempts = attempts + 1, batch_id = NULL, lease_expires_at = NULL, next_attempt_at = NULL,
        possible_duplicate = (possible_duplicate OR %s)
    WHERE id = %s AND status = '{S.QUEUED}' AND batch_id = %s
"""


def mark_sent(
    *, email_id: int, batch_id: uuid.UUID, code: int, text: str, now: datetime, possible_duplicate: bool = False
) -> bool:
    """queued -> sent, answered at once. A batch writes its results through a ResultWriter instead."""
    # possible_duplicate is only ever set, never cleared: an earlier attempt lost after DATA
    # (now deferred and retried) may have delivered a copy, whatever this attempt looked like.
    params: SqlParams = [now, now, code, text, bool(possible_duplicate), email_id, batch_id]
    with connection.cursor() as cursor:
        cursor.execute(_MARK_SENT, params)
        return _report(email_id, "sent", cursor.rowcount)


# Prepared statements live in a server session: the names prepared on each psycopg connection,
# kept here rather than as attributes on psycopg's or Django's objects.
_prepared_on: weakref.WeakKeyDictionary[Connection[Any], set[str]] = weakref.WeakKeyDictionary()


class ResultWriter:
    """A batch's per-message results, written without waiting for the database's answer.

    The sender's one per-batch object below the ORM. `mark_sent` writes a prepared UPDATE to the server and returns:
    the sender builds
    the next message meanwhile. The UPDATE is in the server the moment it returns, so a worker
    killed then loses nothing. Its answer is read by `settle`, which the sender calls before the
    next message's content goes out (so at most one delivered message is ever unrecorded), and
    which runs first, while the writer is open, before any other statement on the connection.
    A transaction opened while an answer is outstanding fails loudly in psycopg ("can't change
    autocommit"); nothing in a batch opens one (see rate_limit.reserve_slots).

    Prepared once per connection: planning the UPDATE takes longer than running it, and the ORM's
    compiling longer still (measured in BENCHMARKS.md, Costs behind the code).
    """

    def __init__(self) -> None:
        self._db = connections[DEFAULT_DB_ALIAS]
        self._pending: tuple[int, str] | None = None  # (email_id, transition) whose answer is still to be read
        self._wrapping = self._db.execute_wrapper(self._settle_first)

    def __enter__(self) -> "ResultWriter":
        self._wrapping.__enter__()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        try:
            self.settle()
        finally:
            self._wrapping.__exit__(exc_type, exc, traceback)

    def _settle_first(
        self,
        execute: Callable[[str, Any, bool, dict[str, Any]], Any],
        sql: str,
        params: Any,
        many: bool,
        context: dict[str, Any],
    ) -> Any:
        self.settle()
        return execute(sql, params, many, context)

    def mark_sent(
        self,
        *,
        email_id: int,
        batch_id: uuid.UUID,
        code: int,
        text: str,
        now: datetime,
        possible_duplicate: bool = False,
    ) -> bool:
        """queued -> sent, its answer read by `settle`. Returns True (assumed until settled, which
        logs a row that was no longer this worker's)."""
        # Written as PostgreSQL reads text parameters, here rather than value by value.
        at = now.isoformat().encode()
        params = [
            at,
            at,
            b"%d" % code,
            text.encode(),
            b"t" if possible_duplicate else b"f",
            b"%d" % email_id,
            str(batch_id).encode(),
        ]
        self._send_prepared("campaigns_mark_sent", _MARK_SENT, params)
        self._pending = (email_id, "sent")
        return True

    def settle(self) -> bool | None:
        """Read the outstanding answer, if any: whether that statement changed its row (None when
        nothing was outstanding). Raises DatabaseError when the server refused the statement."""
        if self._pending is None:
            return None
        email_id, transition = self._pending
        self._pending = None
        results = _results(self._db.connection.pgconn)
        return _report(email_id, transition, sum(result.command_tuples or 0 for result in results))

    def _send_prepared(self, name: str, sql: str, params: list[bytes]) -> None:
        self.settle()
        self._db.ensure_connection()
        raw = self._db.connection
        prepared = _prepared_on.setdefault(raw, set())
        pgconn = raw.pgconn
        if name not in prepared:
            numbered = sql
            for number in range(1, sql.count("%s") + 1):
                numbered = numbered.replace("%s", f"${number}", 1)
            pgconn.send_prepare(name.encode(), numbered.encode())
            _results(pgconn)
            prepared.add(name)
        pgconn.send_query_prepared(name.encode(), params)
        while pgconn.flush():  # a non-blocking connection: write it all before going on
            select.select([], [pgconn.socket], [])


def _results(pgconn: pq.abc.PGconn) -> list[pq.abc.PGresult]:
    results = []
    while (result := pgconn.get_result()) is not None:
        if result.status not in _ANSWERED:
            message = (result.error_message or b"").decode("utf-8", "replace")
            while pgconn.get_result() is not None:
                pass
            raise DatabaseError(message)  # Django's, as the ORM's statements raise
        results.append(result)
    return results


_ANSWERED = (pq.ExecStatus.COMMAND_OK, pq.ExecStatus.TUPLES_OK)


def mark_failed(
    *, email_id: int, batch_id: uuid.UUID, code: int | None, text: str, failure_class: str, now: datetime
) -> bool:
    updated = _owned(email_id, batch_id).update(
        status=S.FAILED,
        smtp_code=code,
        smtp_response=text,
        failure_class=failure_class,
        attempts=F("attempts") + 1,
        batch_id=None,
        lease_expires_at=None,
        next_attempt_at=None,
        updated_at=now,
    )
    return _report(email_id, "failed", updated)


def defer(
    *, email_id: int, batch_id: uuid.UUID, code: int | None, text: str, now: datetime, possible_duplicate: bool = False
) -> bool:
    """Retry by the ladder; past its last rung the email fails, throttled out."""
    ladder = settings.EMAIL_RETRY_LADDER
    email = _owned(email_id, batch_id).only("attempts").first()
    if email is None:
        return _report(email_id, "deferred", 0)
    if email.attempts >= len(ladder):
        return mark_failed(
            email_id=email_id,
            batch_id=batch_id,
            code=code,
            text=text,
            failure_class=Email.FailureClass.THROTTLED,
            now=now,
        )
    wait = ladder[email.attempts]
    extra = {"possible_duplicate": True} if possible_duplicate else {}
    updated = _owned(email_id, batch_id).update(
        status=S.DEFERRED,
        smtp_code=code,
        smtp_response=text,
        attempts=F("attempts") + 1,
        next_attempt_at=now + timedelta(seconds=wait),
        batch_id=None,
        lease_expires_at=None,
        updated_at=now,
        **extra,
    )
    return _report(email_id, "deferred", updated)


def record_error(*, email_id: int, batch_id: uuid.UUID, text: str, now: datetime) -> str | None:
    """An unexpected error on this row: deferred by the ladder until it has been tried
    EMAIL_ERROR_ATTEMPTS times, then failed (failure class `error`). Returns the status written,
    or None when the row was no longer this worker's."""
    email = _owned(email_id, batch_id).only("attempts").first()
    if email is None:
        _report(email_id, "error", 0)
        return None
    if email.attempts + 1 >= settings.EMAIL_ERROR_ATTEMPTS:
        failed = mark_failed(
            email_id=email_id, batch_id=batch_id, code=None, text=text, failure_class=Email.FailureClass.ERROR, now=now
        )
        return S.FAILED if failed else None
    ladder = settings.EMAIL_RETRY_LADDER
    updated = _owned(email_id, batch_id).update(
        status=S.DEFERRED,
        smtp_code=None,
        smtp_response=text,
        attempts=F("attempts") + 1,
        next_attempt_at=now + timedelta(seconds=ladder[min(email.attempts, len(ladder) - 1)]),
        batch_id=None,
        lease_expires_at=None,
        updated_at=now,
    )
    return S.DEFERRED if _report(email_id, "deferred after an error", updated) else None


def release(*, batch_id: uuid.UUID, now: datetime, email_ids: list[int] | None = None) -> int:
    """Hand unsent rows back to pending without spending an attempt."""
    rows = Email.objects.filter(batch_id=batch_id, status=S.QUEUED)
    if email_ids is not None:
        rows = rows.filter(id__in=email_ids)
    return rows.update(status=S.PENDING, batch_id=None, lease_expires_at=None, updated_at=now)


def cancel_open(
    *,
    campaign_id: int | None,
    now: datetime,
    email_ids: list[int] | None = None,
    contact_ids: list[int] | None = None,
    include_queued: bool = False,
) -> int:
    """Cancel a campaign's unsent rows for good (queued rows only when asked: a worker may hold them)."""
    statuses = [S.PENDING, S.DEFERRED] + ([S.QUEUED] if include_queued else [])
    rows = Email.objects.filter(status__in=statuses)
    if campaign_id is not None:
        rows = rows.filter(campaign_id=campaign_id)
    if email_ids is not None:
        rows = rows.filter(id__in=email_ids)
    if contact_ids is not None:
        rows = rows.filter(contact_id__in=contact_ids)
    return rows.update(status=S.CANCELLED, batch_id=None, lease_expires_at=None, updated_at=now)


def cancel_unsent_chunk(*, campaign_id: int, now: datetime, limit: int) -> int:
    """Up to `limit` of the campaign's pending and deferred rows cancelled, oldest first; returns how many.

    A cancelled large campaign's unsent rows go a chunk at a time, each chunk a short statement:
    one UPDATE of them all would hold its transaction (the admin's request) for a time that grows
    with the campaign.
    Nothing of a cancelled campaign is claimed meanwhile (claims read sending campaigns only).
    """
    # As in claim_statement: the chunk's rows are picked and locked once, then updated by
    # primary key alone (FOR UPDATE rechecks their status as it locks them; a row a claim holds is
    # skipped and goes by its lease). As `id IN (SELECT ... LIMIT n) AND status = ...`, with statistics
    # taken before the campaign's rows existed ("one pending row"), the planner may run the subquery once
    # per pending row, or scan every pending row of every campaign per chunk.
    template = f"""
        WITH picked AS MATERIALIZED (
            SELECT id FROM {Email._meta.db_table} WHERE campaign_id = %s AND status = %s ORDER BY id LIMIT %s
            FOR UPDATE SKIP LOCKED
        )
        UPDATE {Email._meta.db_table} SET status = %s, batch_id = NULL, lease_expires_at = NULL, updated_at = %s
        WHERE id = ANY(ARRAY(SELECT id FROM picked))
    """
    cancelled = 0
    for status in (S.PENDING, S.DEFERRED):  # one status each: the partial index of pending rows serves the first
        if cancelled >= limit:
            break
        with connection.cursor() as cursor:
            cursor.execute(template, [campaign_id, status, limit - cancelled, S.CANCELLED, now])
            cancelled += cursor.rowcount
    return cancelled


def cancel_unsent_of_cancelled(*, now: datetime, seconds: float | None = None) -> int:
    """Chunks of the unsent rows of cancelled campaigns, found by their tallies, cancelled until none
    is left or `seconds` (RECIPIENTS_PREPARE_SECONDS) have passed, one chunk at least. Returns how many."""
    seconds = settings.RECIPIENTS_PREPARE_SECONDS if seconds is None else seconds
    deadline = time.monotonic() + seconds
    campaign_ids = list(
        CampaignTally.objects.filter(
            campaign__status=Campaign.Status.CANCELLED, status__in=[S.PENDING, S.DEFERRED], n__gt=0
        )
        .values_list("campaign_id", flat=True)
        .distinct()
    )
    cancelled = 0
    for campaign_id in campaign_ids:
        while True:
            done = cancel_unsent_chunk(campaign_id=campaign_id, now=now, limit=settings.RECIPIENTS_CHUNK_SIZE)
            cancelled += done
            if not done or time.monotonic() >= deadline:
                break
        if time.monotonic() >= deadline:
            break
    return cancelled


def take_back_waiting_batches(*, campaign_id: int, now: datetime) -> int:
    """The campaign's claimed batches that no worker has taken yet are taken here, and their rows
    go back to pending at once (a pause or cancel then holds nothing for the lease's length).

    Taking them is what makes this safe: the BatchTake row is inserted under the same unique key a
    worker's take uses, so a worker taking one of these batches at the same instant either waits
    for this transaction and then finds it taken (and sends nothing), or took it first and keeps it
    (it stops at its next status check). Returns the number of rows handed back.
    """
    sql = f"""
        INSERT INTO {BatchTake._meta.db_table} (batch_id, taken_at)
        SELECT DISTINCT batch_id, %s FROM {Email._meta.db_table}
        WHERE campaign_id = %s AND status = %s AND batch_id IS NOT NULL
        ON CONFLICT (batch_id) DO NOTHING
        RETURNING batch_id
    """
    with connection.cursor() as cursor:
        cursor.execute(sql, [now, campaign_id, S.QUEUED])
        taken = [row[0] for row in cursor.fetchall()]
    if not taken:
        return 0
    return Email.objects.filter(campaign_id=campaign_id, status=S.QUEUED, batch_id__in=taken).update(
        status=S.PENDING, batch_id=None, lease_expires_at=None, updated_at=now
    )


def cancel_batch(*, batch_id: uuid.UUID, now: datetime) -> int:
    """A worker that finds its campaign cancelled cancels the rows it holds, and only those."""
    return Email.objects.filter(batch_id=batch_id, status=S.QUEUED).update(
        status=S.CANCELLED, batch_id=None, lease_expires_at=None, updated_at=now
    )


def retry_failed(*, campaign_id: int, now: datetime, email_ids: list[int] | None = None) -> int:
    """Failed rows go back to pending with a fresh ladder, unless the contact is suppressed since."""
    rows = Email.objects.filter(campaign_id=campaign_id, status=S.FAILED).exclude(
        contact__status__in=Contact.SUPPRESSED_STATUSES
    )
    if email_ids is not None:
        rows = rows.filter(id__in=email_ids)
    return rows.update(status=S.PENDING, attempts=0, failure_class="", next_attempt_at=None, updated_at=now)


# --- what a delivery report said after the 250 --------------------------------


def record_bounce(*, email_id: int, kind: str, status: str, text: str, now: datetime) -> bool:
    """A later bounce of a sent email, from a delivery report; True when it changed the row.

    The row stays sent (the server did accept the message): the report is recorded beside it. The
    same report read twice changes nothing; a hard bounce replaces an earlier soft one, never the
    reverse."""
    if kind not in (Email.BounceKind.HARD, Email.BounceKind.SOFT):
        raise ValueError(f"{kind!r} is not a bounce kind")
    not_recorded = Q(bounced_at__isnull=True)
    if kind == Email.BounceKind.HARD:
        not_recorded |= Q(bounce_kind=Email.BounceKind.SOFT)
    updated = Email.objects.filter(not_recorded, pk=email_id, status=S.SENT).update(
        bounced_at=now, bounce_kind=kind, bounce_status=status[:32], bounce_text=text, updated_at=now
    )
    return bool(updated)


def record_complaint(*, email_id: int, now: datetime) -> bool:
    """A recipient's complaint (an ARF report) about an email; the first one counts, True when recorded."""
    return bool(Email.objects.filter(pk=email_id, complained_at__isnull=True).update(complained_at=now, updated_at=now))


@dataclass(frozen=True)
class Bounce:
    """One later bounce for `record_bounces`: what `record_bounce` takes, for one email."""

    email_id: int
    kind: str
    status: str
    text: str


def record_bounces(*, bounces: Sequence[Bounce], now: datetime) -> set[int]:
    """`record_bounce` for many emails in one statement: the ids of the rows it changed.

    Each email at most once (one UPDATE changes a row once: a second report for the same email is
    the caller's next call). The conditions are record_bounce's: the row is sent, and no bounce is
    recorded yet, or a soft one that a hard one replaces."""
    if not bounces:
        return set()
    ids = [b.email_id for b in bounces]
    if len(set(ids)) != len(ids):
        raise ValueError("record_bounces takes each email at most once")
    if any(b.kind not in (Email.BounceKind.HARD, Email.BounceKind.SOFT) for b in bounces):
        raise ValueError("record_bounces takes hard and soft bounces only")
    with connection.cursor() as cursor:
        cursor.execute(
            """
            UPDATE campaigns_email AS e
               SET bounced_at = %s, bounce_kind = r.kind, bounce_status = r.status, bounce_text = r.text,
                   updated_at = %s
              FROM unnest(%s::bigint[], %s::text[], %s::text[], %s::text[]) AS r (id, kind, status, text)
             WHERE e.id = r.id AND e.status = %s
               AND (e.bounced_at IS NULL OR (r.kind = %s AND e.bounce_kind = %s))
         RETURNING e.id
            """,
            [
                now,
                now,
                ids,
                [b.kind for b in bounces],
                [b.status[:32] for b in bounces],
                [b.text for b in bounces],
                S.SENT,
                Email.BounceKind.HARD,
                Email.BounceKind.SOFT,
            ],
        )
        return {row[0] for row in cursor.fetchall()}


def record_complaints(*, email_ids: Sequence[int], now: datetime) -> set[int]:
    """`record_complaint` for many emails in one statement: the ids of the rows it changed."""
    if not email_ids:
        return set()
    with connection.cursor() as cursor:
        cursor.execute(
            """
            UPDATE campaigns_email SET complained_at = %s, updated_at = %s
             WHERE id = ANY(%s::bigint[]) AND complained_at IS NULL
         RETURNING id
            """,
            [now, now, list(email_ids)],
        )
        return {row[0] for row in cursor.fetchall()}
