"""send_batch: one SMTP connection for a claimed batch, each result recorded as soon as it is known."""

import logging
import smtplib
import ssl
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.db import DatabaseError, connection
from django.utils import timezone

from campaigns import ledger, personalize
from campaigns.lease import Lease, LeaseLost
from campaigns.models import Campaign, Email
from campaigns.services import lifecycle
from contacts.models import Contact
from contacts.services import contacts
from delivery import adaptive_rate, message, rate_limit
from delivery.campaign_loader import campaigns_with_owner_and_account
from sending import crypto, smtp, verp
from sending import services as account_services
from sending.addresses import transport_address
from sending.classifier import Verdict, classify
from sending.models import SmtpAccount
from sending.session import SmtpSession, SmtpUtf8Unsupported

log = logging.getLogger(__name__)
S = Email.Status
# Errors that are not one row's: they stop the batch (its lease brings the rows back), never fail a row.
NOT_THE_ROWS_FAULT = (DatabaseError, SoftTimeLimitExceeded)
STATUS_CHECK_SECONDS = 0.5


@dataclass
class BatchReport:
    sent: int = 0
    deferred: int = 0
    failed: int = 0
    released: int = 0
    connections: int = 0
    notes: list[str] = field(default_factory=list)
    account_id: int | None = None  # the account that sent it (None: it was not sent)


def send_batch(
    batch_id: str | uuid.UUID,
    *,
    clock: Callable[[], datetime] = timezone.now,
    sleep: Callable[[float], object] = time.sleep,
    monotonic: Callable[[], float] = time.monotonic,
    continue_later: Callable[[uuid.UUID, float], object] | None = None,
) -> BatchReport:
    """Send a claimed batch. `clock`, `sleep` and `monotonic` (the lease's clock) are injectable so
    tests drive time.

    `continue_later(batch_id, delay)` schedules the rest of a batch whose next pacing slot is far
    (delivery.tasks passes a delayed send_batch task: the engine never imports the tasks); without
    one, that rest goes back to pending for a later tick."""
    with ledger.ledger_commits(), ledger.ResultWriter() as results:
        return _send_batch(
            batch_id, clock=clock, sleep=sleep, monotonic=monotonic, continue_later=continue_later, results=results
        )


def _send_batch(
    batch_id: str | uuid.UUID,
    *,
    clock: Callable[[], datetime],
    sleep: Callable[[float], object],
    monotonic: Callable[[], float],
    continue_later: Callable[[uuid.UUID, float], object] | None,
    results: ledger.ResultWriter,
) -> BatchReport:
    report = BatchReport()
    batch_id = uuid.UUID(str(batch_id))  # the worker's transitions are guarded by the batch id
    if not ledger.take_batch(batch_id=batch_id, now=clock()):
        report.notes.append("batch already taken")
        return report
    emails, held = _batch_emails(batch_id, clock=clock, monotonic=monotonic)
    if not emails or held is None:
        report.notes.append("nothing left in the batch")
        return report
    campaign = emails[0].campaign
    if campaign.status != Campaign.Status.SENDING:
        # Read with the batch, after it was taken: paused or cancelled since the claim.
        if campaign.status == Campaign.Status.CANCELLED:
            report.released = ledger.cancel_batch(batch_id=batch_id, now=clock())
        else:
            report.released = ledger.release(batch_id=batch_id, now=clock())
        report.notes.append("campaign no longer sending")
        return report
    account = campaign.smtp_account
    refusal = _why_account_cannot_send(account=account, campaign=campaign, now=clock())
    if refusal:
        report.released = ledger.release(batch_id=batch_id, now=clock())
        report.notes.append(refusal)
        return report
    assert account is not None  # a campaign without one was refused
    report.account_id = account.pk
    _BatchRun(
        account=account,
        emails=emails,
        batch_id=batch_id,
        held=held,
        clock=clock,
        sleep=sleep,
        monotonic=monotonic,
        report=report,
        continue_later=continue_later,
        results=results,
    ).run()
    # The batch that sends a campaign's last rows completes it now, not at the next tick.
    lifecycle.complete_finished(now=clock(), campaign_ids={e.campaign_id for e in emails})
    return report


@dataclass
class BatchRow:
    """What sending reads of a batch's Email row and its contact (see message.build)."""

    pk: int
    campaign_id: int
    contact_id: int | None
    to_email: str
    to_name: str
    message_id: str
    contact_attributes: dict[str, Any]
    campaign: Campaign


@dataclass
class HeldRows:
    """The lease a batch's worker holds its rows by, and which rows the last renewal answered for
    (None: every row read with the batch)."""

    lease: Lease
    ids: set[int] | None = None

    def include(self, email_id: int) -> bool:
        return self.ids is None or email_id in self.ids


def renew(batch_id: uuid.UUID, *, clock: Callable[[], datetime], monotonic: Callable[[], float]) -> HeldRows:
    """A fresh lease for the batch's rows still queued under it (the others are not this worker's)."""
    asked = monotonic()
    ids = ledger.renew_lease(batch_id=batch_id, now=clock())
    return HeldRows(Lease.renewed(asked_monotonic=asked), ids)


def _batch_emails(
    batch_id: uuid.UUID, *, clock: Callable[[], datetime], monotonic: Callable[[], float]
) -> tuple[list[BatchRow], HeldRows | None]:
    """The batch's rows with their contacts' attributes, sharing one instance of each campaign
    (with its owner and account, read fresh: see campaign_loader) instead of building them for every row,
    and the lease they are held by: the claim's, renewed first when little of it is left (a batch that
    waited in the queue), keeping only the rows renewed (one whose lease ran out may be another's)."""
    # Plain tuples (ledger.batch_rows): building a batch's Email and Contact instances through the
    # ORM would take a large share of a worker's time.
    asked_at, asked = clock(), monotonic()
    rows, expires_at = ledger.batch_rows(batch_id=batch_id)
    if not rows:
        return [], None
    assert expires_at is not None  # queued rows hold a lease
    held = HeldRows(Lease.ending(expires_at=expires_at, asked_at=asked_at, asked_monotonic=asked))
    if held.lease.renewal_due(monotonic()):
        held = renew(batch_id, clock=clock, monotonic=monotonic)
        rows = [row for row in rows if held.include(row[0])]
    attributes = Contact._meta.get_field("attributes")
    campaigns = campaigns_with_owner_and_account(row[1] for row in rows)
    # (A campaign deleted since the read took its rows with it.)
    return [
        BatchRow(
            pk,
            campaign_id,
            contact_id,
            to_email,
            to_name,
            message_id,
            # No expression: Django reads one only for a JSON key transform (the stubs ask for one).
            attributes.from_db_value(raw, None, connection) or {} if contact_id else {},  # type: ignore[arg-type]
            campaigns[campaign_id],
        )
        for pk, campaign_id, contact_id, to_email, to_name, message_id, raw in rows
        if campaign_id in campaigns
    ], held


def _why_account_cannot_send(*, account: SmtpAccount | None, campaign: Campaign, now: datetime) -> str:
    # The account and the owner's access were read with the batch, after it was taken: current.
    if account is None:
        return "no SMTP account"
    if account.paused_until and account.paused_until > now:
        return f"account paused: {account.pause_reason}"
    if not campaign.owner.has_access:
        return "owner has no access"
    return ""


class _BatchRun:
    def __init__(
        self,
        *,
        account: SmtpAccount,
        emails: list[BatchRow],
        batch_id: uuid.UUID,
        held: HeldRows,
        clock: Callable[[], datetime],
        sleep: Callable[[float], object],
        monotonic: Callable[[], float],
        report: BatchReport,
        continue_later: Callable[[uuid.UUID, float], object] | None,
        results: ledger.ResultWriter,
    ) -> None:
        self.account, self.emails, self.batch_id = account, emails, batch_id
        self.clock, self.sleep, self.monotonic, self.report = clock, sleep, monotonic, report
        self.continue_later = continue_later
        self.results = results
        self.smtp = SmtpSession(account, before_content=self._before_content)
        self.throttled = False
        self.held = held
        self.sending: BatchRow | None = None  # the row whose message is being sent
        self.slots: list[datetime] = []
        self.interval = 0.0
        self.waited = False
        self.last_status_check = time.monotonic()  # the campaign was read with the batch, just now

    def run(self) -> None:
        index = 0
        try:
            for index, email in enumerate(self.emails):
                too_long = self._wait_for_slot(len(self.emails) - index)
                if too_long:
                    self._continue_later(index, too_long)
                    return
                # Checked after the pacing wait, not before: the wait can last seconds, and a
                # pause or cancel made during it must stop this very message, not the next one.
                if self._status_check_due() and not self._campaign_is_sending(email):
                    self._give_back_slots()
                    self._release_rest(index, "campaign no longer sending")
                    return
                if not self._still_holds(email):
                    if not self._holds_any_after(index):
                        return
                    continue
                if not self._ensure_connection(index):
                    return
                if not self._send_one(email, index):
                    return
        except SoftTimeLimitExceeded:
            # The task ran for the lease's length: hand back what is unsent. A message whose content
            # was written keeps its row for the lease (the server may have it), flagged.
            if self.smtp.lost():
                ledger.flag_possible_duplicate(email_id=self.emails[index].pk, batch_id=self.batch_id)
                index += 1
            self._release_rest(index, "stopped at the task's time limit")
        finally:
            self._give_back_slots()
            self.smtp.close()
            self.report.connections = self.smtp.opened
            if not self.throttled and self.report.sent and self.account.learned_per_minute is not None:
                adaptive_rate.after_clean_batch(account_id=self.account.pk, now=self.clock())

    # --- steps ---------------------------------------------------------------

    def _campaign_is_sending(self, email: BatchRow) -> bool:
        self.last_status_check = time.monotonic()
        status, paused_until = (
            Campaign.objects.filter(pk=email.campaign_id).values_list("status", "smtp_account__paused_until").first()
        ) or (None, None)
        if paused_until and paused_until > self.clock():
            # Another batch of this account hit a quota or login failure: stop here too.
            return False
        if status == Campaign.Status.CANCELLED:
            # Only this worker's own rows: cancelling the campaign's other queued rows would take rows
            # from workers in the middle of sending them, and a delivered message would be recorded
            # cancelled. Other workers stop at their next check; a dead worker's rows are
            # cancelled by return_due when their lease ends.
            ledger.cancel_batch(batch_id=self.batch_id, now=self.clock())
        return status == Campaign.Status.SENDING

    def _wait_for_slot(self, remaining: int) -> float:
        """Wait for this message's pacing slot; returns 0, or the wait in seconds when too long."""
        now = self.clock()
        if not self.slots:
            self.slots, self.interval = rate_limit.reserve_slots(account_id=self.account.pk, now=now, wanted=remaining)
        slot = self.slots[0]
        wait = (slot - now).total_seconds()
        if wait > settings.MAX_PACING_WAIT_SECONDS:
            self._give_back_slots()
            return wait
        self.slots.pop(0)
        self.waited = wait > 0
        if self.waited:
            self.sleep(wait)
        return 0

    def _continue_later(self, index: int, wait: float) -> None:
        """Free the worker instead of sleeping through a long pacing wait.

        The unsent rows stay claimed under a new batch id, their lease stretched
        over the wait, and a send_batch for them is due when the slot comes; other
        accounts' batches use the worker meanwhile.
        """
        if self.continue_later is None:
            self._release_rest(index, f"next slot in {wait:.1f} s: handed back")
            return
        ids = [e.pk for e in self.emails[index:]]
        batch_id = ledger.rebatch(batch_id=self.batch_id, email_ids=ids, now=self.clock(), hold_seconds=wait)
        if batch_id is not None:
            self.continue_later(batch_id, wait)
            self.report.notes.append(f"continues in {wait:.1f} s")

    def _give_back_slots(self) -> None:
        rate_limit.give_back_slots(account_id=self.account.pk, unused=self.slots, interval=self.interval)
        self.slots = []

    def _status_check_due(self) -> bool:
        # After any pacing wait (a pause or cancel made during it must stop this very
        # message), and otherwise at most every STATUS_CHECK_SECONDS of sending.
        return self.waited or time.monotonic() - self.last_status_check >= STATUS_CHECK_SECONDS

    def _ensure_connection(self, index: int, *, maybe_delivered: bool = False) -> bool:
        """Open the connection if none is open; False when it cannot be (the batch then stops).

        `maybe_delivered`: the message at `index` was lost after its content (a reconnect to retry it)."""
        if self.smtp.connected:
            return True
        # Read now, not with the batch: another batch of the account may have found its server
        # unreachable since this one read the account (a reconnect comes later in a batch).
        resting_until, unreachable_since = SmtpAccount.objects.filter(pk=self.account.pk).values_list(
            "backoff_until", "unreachable_since"
        ).first() or (None, None)
        if resting_until and resting_until > self.clock():
            self._server_unreachable(index, None, maybe_delivered=maybe_delivered)
            return False
        try:
            self.smtp.open()
        except smtp.OPEN_ERRORS as exc:
            self._connection_failed(index, exc, maybe_delivered=maybe_delivered)
            return False
        if unreachable_since:
            account_services.clear_backoff(account_id=self.account.pk)
        return True

    def _connection_failed(self, index: int, exc: Exception, *, maybe_delivered: bool = False) -> None:
        text = smtp.describe_open_failure(exc, self.account)
        if isinstance(exc, (crypto.DecryptionError, smtp.SmtpDestinationError)):
            # Our configuration or the account's destination: nothing can be sent until it is fixed.
            self._pause_account(text)
            self._release_rest(index, "account cannot connect")
        elif isinstance(exc, smtplib.SMTPResponseException) and (
            classify(exc.smtp_code, exc.smtp_error).verdict == Verdict.ACCOUNT or exc.smtp_code in (530, 534, 535)
        ):
            self._pause_account(text)
            self._release_rest(index, "account paused")
        elif isinstance(exc, smtplib.SMTPResponseException):
            self._defer_rest(index, exc.smtp_code, text)
            if classify(exc.smtp_code, exc.smtp_error).rate_limited:  # e.g. 421 "too many connections"
                self._throttled(exc.smtp_code, text)
        elif smtp.no_server_answered(exc):
            self._server_unreachable(index, text, maybe_delivered=maybe_delivered)
        else:
            self._defer_rest(index, None, f"connection failed: {text}")

    def _server_unreachable(self, index: int, text: str | None, *, maybe_delivered: bool) -> None:
        """No server answered (`text`: the error), or the account rests after such a failure (`text`
        None): no email's fault, so none spends an attempt; the account rests instead (doubling with
        each failed try) and its emails go out once the server is back."""
        why = f"server unreachable: {text}" if text else "account resting: its server could not be reached"
        if maybe_delivered:
            # The message lost after its content keeps the rule for such a loss: one more try,
            # spent, so a server that takes content and then crashes cannot loop it forever.
            email = self.emails[index]
            if ledger.defer(
                email_id=email.pk,
                batch_id=self.batch_id,
                code=None,
                text=f"connection lost; {why}",
                now=self.clock(),
                possible_duplicate=True,
            ):
                self.report.deferred += 1
            index += 1
        if text:
            account_services.back_off_account(account_id=self.account.pk, error=text, now=self.clock())
        self._release_rest(index, why)

    def _send_one(self, email: BatchRow, index: int, *, retried: bool = False, maybe_delivered: bool = False) -> bool:
        if not email.message_id:
            email.message_id = message.new_message_id()
            ledger.set_message_id(email_id=email.pk, batch_id=self.batch_id, message_id=email.message_id)
        try:
            from_address, raw = message.build(email=email, campaign=email.campaign, account=self.account)
        except NOT_THE_ROWS_FAULT:
            raise
        except personalize.PersonalizationError as exc:
            return self._fail_unbuildable(email, exc)
        except Exception as exc:  # noqa: BLE001 - one recipient's bug must not stall the others
            return self._record_error(email, exc)
        to_address = transport_address(email.to_email)
        self.sending = email
        try:
            code, text = self.smtp.transact(from_address, to_address, raw, next_envelope=self._next_envelope(index))
        except LeaseLost as exc:
            log.warning("batch %s: %s; not sent", self.batch_id, exc)
            self.held = renew(self.batch_id, clock=self.clock, monotonic=self.monotonic)
            assert self.held.ids is not None  # a renewal answers for its rows
            self.held.ids.discard(email.pk)
            return self._holds_any_after(index)
        except SmtpUtf8Unsupported as exc:
            now = self.clock()
            ledger.mark_failed(
                email_id=email.pk,
                batch_id=self.batch_id,
                code=None,
                text=str(exc),
                failure_class=Email.FailureClass.REJECTED,
                now=now,
            )
            self.report.failed += 1
            return True
        except (TimeoutError, smtplib.SMTPServerDisconnected, ConnectionError, ssl.SSLError) as exc:
            # Lost during DATA, the server may or may not have taken it: a possible duplicate.
            lost_in_data = self.smtp.lost()
            if lost_in_data:
                # Recorded at once, like every result: if the reconnect fails (the rest of the batch
                # is then deferred) or this worker dies, the row must still say the server may have it.
                ledger.flag_possible_duplicate(email_id=email.pk, batch_id=self.batch_id)
            if retried:
                ledger.defer(
                    email_id=email.pk,
                    batch_id=self.batch_id,
                    code=None,
                    text=f"connection lost: {exc}",
                    now=self.clock(),
                    possible_duplicate=lost_in_data,
                )
                self.report.deferred += 1
                self._defer_rest(index + 1, None, "connection lost twice")
                return False
            log.info("connection lost while sending email %s; reconnecting once", email.pk)
            if not self._ensure_connection(index, maybe_delivered=lost_in_data):
                return False
            return self._send_one(email, index, retried=True, maybe_delivered=lost_in_data)
        except NOT_THE_ROWS_FAULT:
            raise
        except Exception as exc:  # noqa: BLE001
            # Where the dialogue stands is unknown: drop the connection (the next message opens another).
            if self.smtp.lost():
                ledger.flag_possible_duplicate(email_id=email.pk, batch_id=self.batch_id)
            return self._record_error(email, exc)
        return self._record(email, index, code, text, possible_duplicate=maybe_delivered)

    def _fail_unbuildable(self, email: BatchRow, exc: personalize.PersonalizationError) -> bool:
        """A message its template cannot make for this recipient (a subject or body past its size
        limit): failed at once with the reason, since building it again would fail the same way."""
        reason = "; ".join(exc.messages)
        log.warning("batch %s: email %s not built: %s", self.batch_id, email.pk, reason)
        if self.smtp.pending_envelope is not None:
            self.smtp.close()  # the server waits for this message's content, which will never come
        if ledger.mark_failed(
            email_id=email.pk,
            batch_id=self.batch_id,
            code=None,
            text=f"not built: {reason}"[:1000],
            failure_class=Email.FailureClass.ERROR,
            now=self.clock(),
        ):
            self.report.failed += 1
        return True

    def _record_error(self, email: BatchRow, exc: Exception) -> bool:
        """An unexpected error building or sending this one message: the row is retried a bounded
        number of times (EMAIL_ERROR_ATTEMPTS, counted in attempts), then fails with the error's
        text; the rest of the batch goes on either way."""
        log.exception("batch %s: email %s could not be sent", self.batch_id, email.pk)
        if self.smtp.pending_envelope is not None:
            self.smtp.close()  # the server waits for this message's content, which will never come
        text = f"error while sending: {type(exc).__name__}: {exc}"[:1000]
        outcome = ledger.record_error(email_id=email.pk, batch_id=self.batch_id, text=text, now=self.clock())
        if outcome == S.FAILED:
            self.report.failed += 1
        elif outcome == S.DEFERRED:
            self.report.deferred += 1
        return True

    def _next_envelope(self, index: int) -> tuple[str, str] | None:
        """The next message's (from, to), to go out right behind this message's content, or None.

        Only when the next message may go almost at once (its pacing slot, already reserved, is
        due within SMTP_ENVELOPE_AHEAD_SECONDS; its content still waits for the slot) and takes the
        pipelined dialogue: once its DATA is written the next content must follow, and a batch
        stopping before it drops the connection instead (the server discards a message without
        its final dot)."""
        ahead = settings.SMTP_ENVELOPE_AHEAD_SECONDS
        if ahead <= 0 or index + 1 >= len(self.emails) or not self.slots:
            return None
        if not self.held.include(self.emails[index + 1].pk):
            return None
        if (self.slots[0] - self.clock()).total_seconds() > ahead:
            return None
        following = self.emails[index + 1]
        envelope = (verp.envelope_sender(account=self.account, email_id=following.pk), following.to_email)
        return envelope if self.smtp.pipelines(*envelope) else None

    def _record(self, email: BatchRow, index: int, code: int, text: str, possible_duplicate: bool = False) -> bool:
        verdict = classify(code, text)
        now = self.clock()
        if verdict.verdict == Verdict.SENT:
            # Answered later: the next message is built meanwhile (see ledger.ResultWriter).
            self.results.mark_sent(
                email_id=email.pk,
                batch_id=self.batch_id,
                code=code,
                text=text,
                now=now,
                possible_duplicate=possible_duplicate,
            )
            self.report.sent += 1
            return True
        if verdict.verdict in (Verdict.DEFERRED, Verdict.UNKNOWN):
            ledger.defer(email_id=email.pk, batch_id=self.batch_id, code=code, text=text, now=now)
            self.report.deferred += 1
            if verdict.rate_limited:
                self._throttled(code, text)
            if code == 421:
                # 421: the server is closing the channel; the rest waits for a later batch.
                self.smtp.close()
                self._release_rest(index + 1, "421 from server")
                return False
            return True
        if verdict.verdict == Verdict.ACCOUNT:
            # The account's problem: keep this email (no attempt spent) and stop.
            self._pause_account(text)
            self._release_rest(index, "account paused")
            return False
        bounced = verdict.verdict == Verdict.BOUNCED
        failure_class = Email.FailureClass.BOUNCED if bounced else Email.FailureClass.REJECTED
        ledger.mark_failed(
            email_id=email.pk, batch_id=self.batch_id, code=code, text=text, failure_class=failure_class, now=now
        )
        self.report.failed += 1
        if verdict.verdict == Verdict.BOUNCED and email.contact_id:
            contacts.suppress(contact_ids=[email.contact_id], status=Contact.Status.BOUNCED, now=now)
        return True

    def _throttled(self, code: int | None, text: str) -> None:
        """The server says the account sends too fast: what it accepted sets the account's rate
        (adaptive_rate), and this worker's reserved slots, taken at the old rate, go back first,
        so the next message waits for the paused clock instead of being refused too."""
        self.throttled = True
        self._give_back_slots()
        adaptive_rate.on_throttled(account_id=self.account.pk, code=code, text=text, now=self.clock())

    # --- batch-level outcomes ----------------------------------------------------

    def _release_rest(self, index: int, why: str) -> None:
        ids = [e.pk for e in self.emails[index:]]
        self.report.released += ledger.release(batch_id=self.batch_id, now=self.clock(), email_ids=ids)
        self.report.notes.append(why)

    def _defer_rest(self, index: int, code: int | None, text: str) -> None:
        now = self.clock()
        for email in self.emails[index:]:
            if ledger.defer(email_id=email.pk, batch_id=self.batch_id, code=code, text=text, now=now):
                self.report.deferred += 1
        self.report.notes.append(text)

    def _pause_account(self, reason: str) -> None:
        account_services.pause_account(account_id=self.account.pk, reason=reason, now=self.clock())

    def _still_holds(self, email: BatchRow) -> bool:
        """Whether this row is still this worker's, renewing the batch's lease first when due.

        Asked right before each message goes out: a worker that stalled past its lease (a long
        wait, a stopped process, a paused VM) may find its rows returned to pending and claimed by
        another worker. The renewal is the fence: a row it does not renew is never sent from here.
        """
        if self.held.lease.renewal_due(self.monotonic()):
            self.held = renew(self.batch_id, clock=self.clock, monotonic=self.monotonic)
        if self.held.include(email.pk):
            return True
        log.warning("batch %s: email %s is no longer this worker's (lease lost); not sent", self.batch_id, email.pk)
        if self.smtp.pending_envelope is not None:
            self.smtp.close()  # its envelope was written ahead: drop the connection, never complete it
        return False

    def _holds_any_after(self, index: int) -> bool:
        if any(self.held.include(e.pk) for e in self.emails[index + 1 :]):
            return True
        self._give_back_slots()
        self.report.notes.append("lease lost: the rest belongs to another worker")
        return False

    def _before_content(self) -> None:
        """Right before a content goes out, after everything the worker may have waited for (the
        pacing slot, the server's answers, the database): the previous message's result is recorded
        (so at most one delivered message is ever unrecorded), and the lease still covers the whole
        send, renewed if it does not (campaigns.lease). Raises LeaseLost when the lease
        cannot be renewed for this row."""
        email = self.sending
        assert email is not None  # set before each message's dialogue
        self.results.settle()
        if self.held.lease.may_send(self.monotonic()):
            return
        self.held = renew(self.batch_id, clock=self.clock, monotonic=self.monotonic)
        if not (self.held.include(email.pk) and self.held.lease.may_send(self.monotonic())):
            raise LeaseLost(f"the lease of email {email.pk} ran out before its content went out")
