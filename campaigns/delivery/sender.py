"""send_batch: one SMTP connection for a claimed batch, each result recorded as soon as it is known."""

import logging
import re
import smtplib
import socket
import ssl
import time
import uuid
from dataclasses import dataclass, field
from datetime import timedelta

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from accounts import crypto, smtp
from accounts.models import SmtpAccount
from campaigns.delivery import campaign_cache, ledger, message, rate_limit
from campaigns.delivery.classifier import Verdict, classify
from campaigns.models import Campaign, Contact, Email

log = logging.getLogger(__name__)
LEASE_RENEW_EVERY = 30  # seconds
STATUS_CHECK_SECONDS = 0.5
_LEADING_DOT = re.compile(rb"(?m)^\.")
_PLAIN_ADDRESS = re.compile(r"[^\s<>()\[\],;:\"\\]+@[^\s<>()\[\],;:\"\\]+")


@dataclass
class BatchReport:
    sent: int = 0
    deferred: int = 0
    failed: int = 0
    released: int = 0
    connections: int = 0
    notes: list = field(default_factory=list)


def send_batch(batch_id, *, clock=timezone.now, sleep=time.sleep, continue_later=None):
    """Send a claimed batch. `clock`, `sleep` and `continue_later(batch_id, delay)` are
    injectable so tests drive time; by default a continuation is a delayed send_batch task."""
    with ledger.ledger_commits(), ledger.settling():
        return _send_batch(batch_id, clock=clock, sleep=sleep, continue_later=continue_later)


def _send_batch(batch_id, *, clock, sleep, continue_later):
    report = BatchReport()
    token = uuid.UUID(str(batch_id))  # the worker's transitions are guarded by the batch id
    if not ledger.take_batch(batch_id=token, now=clock()):
        report.notes.append("batch already taken")
        return report
    emails = _batch_emails(token, now=clock())
    if not emails:
        report.notes.append("nothing left in the batch")
        return report
    campaign = emails[0].campaign
    if campaign.status != Campaign.Status.SENDING:
        # Read with the batch, after it was taken: paused or cancelled since the claim.
        if campaign.status == Campaign.Status.CANCELLED:
            report.released = ledger.cancel_batch(token=token, now=clock())
        else:
            report.released = ledger.release(token=token, now=clock())
        report.notes.append("campaign no longer sending")
        return report
    account = campaign.smtp_account
    refusal = _why_account_cannot_send(account=account, campaign=campaign, now=clock())
    if refusal:
        report.released = ledger.release(token=token, now=clock())
        report.notes.append(refusal)
        return report
    _BatchRun(
        account=account, emails=emails, token=token, clock=clock, sleep=sleep, report=report,
        continue_later=continue_later or _enqueue_continuation,
    ).run()
    # The batch that sends a campaign's last rows completes it now, not at the next tick (10 s on).
    ledger.complete_campaigns(now=clock(), campaign_ids={e.campaign_id for e in emails})
    return report


def _angle_address(address):
    """<address> for MAIL and RCPT; smtplib's quoteaddr parses every address again (~30 us)."""
    if _PLAIN_ADDRESS.fullmatch(address):
        return f"<{address}>"
    return smtplib.quoteaddr(address)


def _envelope(from_address, to_address):
    return f"MAIL FROM:{_angle_address(from_address)}\r\nRCPT TO:{_angle_address(to_address)}\r\nDATA\r\n"


def _data_content(raw):
    """The message as sent after DATA's 354: leading dots doubled, ended by CRLF "." CRLF."""
    # The pattern only where a line starts with a dot (rare): scanning every message with it
    # took ~10 us, finding none.
    content = _LEADING_DOT.sub(b"..", raw) if raw.startswith(b".") or b"\n." in raw else raw
    if not content.endswith(b"\r\n"):
        content += b"\r\n"
    return content + b".\r\n"


def _enqueue_continuation(batch_id, delay):
    from campaigns.tasks import send_batch as send_batch_task

    # A countdown of one pacing interval, far under the broker's visibility timeout;
    # if the task is lost, the rows' lease brings them back to pending.
    transaction.on_commit(lambda: send_batch_task.apply_async((str(batch_id),), countdown=delay))


@dataclass
class Recipient:
    """What sending reads of a batch's Email row and its contact (see message.build)."""

    pk: int
    campaign_id: int
    contact_id: int | None
    to_email: str
    to_name: str
    message_id: str
    contact_attributes: dict
    campaign: Campaign = None


def _batch_emails(token, *, now):
    """The batch's rows with their contacts' attributes, sharing one instance of each campaign
    (with its owner and account, see campaign_cache) instead of building them again for every row."""
    # Plain tuples (ledger.batch_rows): building 50 Email and Contact instances through the ORM
    # was a fifth of a worker's time.
    attributes = Contact._meta.get_field("attributes")
    emails = [
        Recipient(pk, campaign_id, contact_id, to_email, to_name, message_id,
                  attributes.from_db_value(raw, None, connection) or {} if contact_id else {})
        for pk, campaign_id, contact_id, to_email, to_name, message_id, raw in ledger.batch_rows(token=token, now=now)
    ]
    campaigns = {pk: campaign_cache.campaign_for_batch(pk) for pk in {e.campaign_id for e in emails}}
    for email in emails:
        email.campaign = campaigns[email.campaign_id]
    # (A campaign deleted since the read took its rows with it.)
    return [email for email in emails if email.campaign is not None]


def _why_account_cannot_send(*, account, campaign, now):
    # The account and the owner's access were read with the batch, after it was taken: current.
    if account is None:
        return "no SMTP account"
    if account.paused_until and account.paused_until > now:
        return f"account paused: {account.pause_reason}"
    if not campaign.owner.has_access:
        return "owner has no access"
    return ""


class _BatchRun:
    def __init__(self, *, account, emails, token, clock, sleep, report, continue_later):
        self.account, self.emails, self.token = account, emails, token
        self.clock, self.sleep, self.report = clock, sleep, report
        self.continue_later = continue_later
        self.conn = None
        self.in_data = False
        self.pending_envelope = None  # (from, to) of the next message, written behind this content
        self.throttled = False
        self.last_renewal = clock()
        self.held = None  # the ids the last lease renewal answered for; None: every row read with the batch
        self.slots, self.interval = [], 0.0
        self.waited = False
        self.last_status_check = time.monotonic()  # the campaign was read with the batch, just now

    def run(self):
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
                    if not any(e.pk in self.held for e in self.emails[index + 1:]):
                        self._give_back_slots()
                        self.report.notes.append("lease lost: the rest belongs to another worker")
                        return
                    continue
                if not self._ensure_connection(index):
                    return
                if not self._send_one(email, index):
                    return
        finally:
            self._give_back_slots()
            self._close()
            if not self.throttled and self.report.sent and self.account.throttle_factor < 1.0:
                rate_limit.speed_up(account_id=self.account.pk)

    # --- steps ---------------------------------------------------------------

    def _campaign_is_sending(self, email):
        self.last_status_check = time.monotonic()
        status, paused_until = (
            Campaign.objects.filter(pk=email.campaign_id)
            .values_list("status", "smtp_account__paused_until")
            .first()
        ) or (None, None)
        if paused_until and paused_until > self.clock():
            # Another batch of this account hit a quota or login failure: stop here too.
            return False
        if status == Campaign.Status.CANCELLED:
            # Only this worker's own rows: cancelling the campaign's other queued rows took rows
            # from workers in the middle of sending them, so a delivered message was recorded
            # cancelled. Other workers stop at their next check; a dead worker's rows are
            # cancelled by return_due when their lease ends.
            ledger.cancel_batch(token=self.token, now=self.clock())
        return status == Campaign.Status.SENDING

    def _wait_for_slot(self, remaining):
        """Wait for this message's pacing slot; returns 0, or the wait in seconds when too long."""
        now = self.clock()
        if not self.slots:
            # The reservation is a transaction of its own, and BEGIN does not pass through the
            # statement wrapper that settles an outstanding result: settle it here.
            ledger.settle()
            self.slots, self.interval = rate_limit.reserve_slots(
                account_id=self.account.pk, now=now, wanted=remaining
            )
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

    def _continue_later(self, index, wait):
        """Free the worker instead of sleeping through a long pacing wait.

        The unsent rows stay claimed under a new batch id, their lease stretched
        over the wait, and a send_batch for them is due when the slot comes; other
        accounts' batches use the worker meanwhile.
        """
        ids = [e.pk for e in self.emails[index:]]
        batch_id = ledger.rebatch(token=self.token, email_ids=ids, now=self.clock(), hold_seconds=wait)
        if batch_id is not None:
            self.continue_later(batch_id, wait)
            self.report.notes.append(f"continues in {wait:.1f} s")

    def _give_back_slots(self):
        rate_limit.give_back_slots(account_id=self.account.pk, unused=self.slots, interval=self.interval)
        self.slots = []

    def _status_check_due(self):
        # After any pacing wait (a pause or cancel made during it must stop this very
        # message), and otherwise at most every STATUS_CHECK_SECONDS of sending.
        return self.waited or time.monotonic() - self.last_status_check >= STATUS_CHECK_SECONDS

    def _ensure_connection(self, index):
        if self.conn is not None:
            return True
        try:
            self.conn, _ = smtp.open_connection(self.account)
            self.report.connections += 1
            return True
        except smtplib.SMTPResponseException as exc:
            verdict = classify(exc.smtp_code, exc.smtp_error)
            text = smtp.format_reply(exc.smtp_code, exc.smtp_error)
            if verdict.verdict == Verdict.ACCOUNT or exc.smtp_code in (530, 534, 535):
                self._pause_account(text)
                self._release_rest(index, "account paused")
            else:
                self._defer_rest(index, exc.smtp_code, text)
        except crypto.DecryptionError as exc:
            # A key missing from FIELD_ENCRYPTION_KEYS: nothing can be sent until an operator fixes it.
            self._pause_account(str(exc))
            self._release_rest(index, "password cannot be decrypted")
        except smtp.SmtpDestinationError as exc:
            self._pause_account(str(exc))
            self._release_rest(index, "account destination refused")
        except (OSError, smtplib.SMTPException, ssl.SSLError) as exc:
            self._defer_rest(index, None, f"connection failed: {exc}")
        return False

    def _send_one(self, email, index, *, retried=False, maybe_delivered=False):
        if not email.message_id:
            email.message_id = message.new_message_id()
            ledger.set_message_id(email_id=email.pk, token=self.token, message_id=email.message_id)
        from_address, raw = message.build(email=email, campaign=email.campaign, account=self.account)
        try:
            code, text = self._transact(from_address, email.to_email, raw, next_envelope=self._next_envelope(index))
        except (smtplib.SMTPServerDisconnected, socket.timeout, ConnectionError, ssl.SSLError) as exc:
            # Lost during DATA, the server may or may not have taken it: a possible duplicate.
            lost_in_data = self.in_data
            self.in_data = False
            self._close(quietly=True)
            if lost_in_data:
                # Recorded at once, like every result: if the reconnect fails (the rest of the batch
                # is then deferred) or this worker dies, the row must still say the server may have it.
                ledger.flag_possible_duplicate(email_id=email.pk, token=self.token)
            if retried:
                ledger.defer(
                    email_id=email.pk, token=self.token, code=None, text=f"connection lost: {exc}", now=self.clock(),
                    possible_duplicate=lost_in_data,
                )
                self.report.deferred += 1
                self._defer_rest(index + 1, None, "connection lost twice")
                return False
            log.info("connection lost while sending email %s; reconnecting once", email.pk)
            if not self._ensure_connection(index):
                return False
            return self._send_one(email, index, retried=True, maybe_delivered=lost_in_data)
        return self._record(email, index, code, text, possible_duplicate=maybe_delivered)

    def _transact(self, from_address, to_address, raw, next_envelope=None):
        """MAIL, one RCPT, DATA: returns the server's (code, text) for the step that decided."""
        if self._pipelines(from_address, to_address):
            return self._transact_pipelined(from_address, to_address, raw, next_envelope)
        options = ["SMTPUTF8"] if not (from_address + to_address).isascii() and self.conn.has_extn("smtputf8") else []
        return self._transact_stepwise(from_address, to_address, raw, options)

    def _pipelines(self, from_address, to_address):
        return (from_address + to_address).isascii() and self.conn.has_extn("pipelining")

    def _next_envelope(self, index):
        """The next message's (from, to), to go out right behind this message's content, or None.

        Only when the next message may go almost at once (its pacing slot, already reserved, is
        due within SMTP_ENVELOPE_AHEAD_SECONDS; its content still waits for the slot) and takes the
        pipelined dialogue: once its DATA is written the next content must follow, and a batch
        stopping before it drops the connection instead (the server discards a message without
        its final dot)."""
        ahead = settings.SMTP_ENVELOPE_AHEAD_SECONDS
        if ahead <= 0 or index + 1 >= len(self.emails) or not self.slots:
            return None
        if self.held is not None and self.emails[index + 1].pk not in self.held:
            return None
        if (self.slots[0] - self.clock()).total_seconds() > ahead:
            return None
        envelope = (self.account.from_email, self.emails[index + 1].to_email)
        return envelope if self._pipelines(*envelope) else None

    def _transact_stepwise(self, from_address, to_address, raw, options):
        code, resp = self.conn.mail(from_address, options)
        if code != 250:
            self._rset_quietly()
            return code, smtp.format_reply(code, resp)
        code, resp = self.conn.rcpt(to_address)
        if code not in (250, 251):
            self._rset_quietly()
            return code, smtp.format_reply(code, resp)
        ledger.settle()  # the previous message's result is recorded before this one is delivered
        self.in_data = True
        try:
            code, resp = self.conn.data(raw)
        except smtplib.SMTPDataError as exc:
            self.in_data = False
            self._rset_quietly()
            return exc.smtp_code, smtp.format_reply(exc.smtp_code, exc.smtp_error)
        # No `finally` here: on a lost connection in_data must stay True until _send_one has
        # read it, or a loss after DATA is never counted as a possible duplicate.
        self.in_data = False
        return code, smtp.format_reply(code, resp)

    def _transact_pipelined(self, from_address, to_address, raw, next_envelope=None):
        """MAIL, RCPT and DATA in one write, their three answers read after (RFC 2920).

        Every provider we send to offers PIPELINING: one round trip to the server per
        message instead of three before the content, which over a real network is most of
        a message's time. Each answer is still read and decides as in the stepwise dialogue.
        The next message's MAIL, RCPT and DATA go in the same write as this content (RFC 2920
        lets the content open a group), so the server answers both together: one round trip
        a message, not two.
        """
        conn = self.conn
        if self.pending_envelope is None:
            conn.send(_envelope(from_address, to_address))
        elif self.pending_envelope != (from_address, to_address):
            raise RuntimeError(f"the envelope written ahead was for {self.pending_envelope}, not {to_address}")
        self.pending_envelope = None
        mail = conn.getreply()
        if mail[0] == 421:
            return mail[0], smtp.format_reply(*mail)  # closing the channel: no further answers come
        rcpt = conn.getreply()
        if rcpt[0] == 421:
            return rcpt[0], smtp.format_reply(*rcpt)
        data = conn.getreply()
        if data[0] == 354 and (mail[0] != 250 or rcpt[0] not in (250, 251)):
            # A server that opens DATA although it refused the envelope gets an empty,
            # recipient-less message it must refuse; the envelope's answer is the verdict.
            conn.send(".\r\n")
            conn.getreply()
        for code, resp in (mail, rcpt):
            if code not in (250, 251):
                self._rset_quietly()
                return code, smtp.format_reply(code, resp)
        if data[0] != 354:
            self._rset_quietly()
            return data[0], smtp.format_reply(*data)
        ledger.settle()  # the previous message's result is recorded before this one is delivered
        self.in_data = True
        content = _data_content(raw)
        if next_envelope is not None:
            content += _envelope(*next_envelope).encode("ascii")
            self.pending_envelope = next_envelope
        conn.send(content)
        code, resp = conn.getreply()
        # As in the stepwise dialogue, in_data stays True if the connection was lost above.
        self.in_data = False
        return code, smtp.format_reply(code, resp)

    def _rset_quietly(self):
        try:
            self.conn.rset()
        except (smtplib.SMTPException, OSError):
            self._close(quietly=True)

    def _record(self, email, index, code, text, possible_duplicate=False):
        verdict = classify(code, text)
        now = self.clock()
        if verdict.verdict == Verdict.SENT:
            # Answered later: the next message is built meanwhile (see ledger.mark_sent).
            ledger.mark_sent(email_id=email.pk, token=self.token, code=code, text=text, now=now,
                             possible_duplicate=possible_duplicate, wait=False)
            self.report.sent += 1
            return True
        if verdict.verdict in (Verdict.DEFERRED, Verdict.UNKNOWN):
            ledger.defer(email_id=email.pk, token=self.token, code=code, text=text, now=now)
            self.report.deferred += 1
            self.throttled = True
            rate_limit.slow_down(account_id=self.account.pk)
            if code == 421:
                # 421: the server is closing the channel; the rest waits for a later batch.
                self._close(quietly=True)
                self._release_rest(index + 1, "421 from server")
                return False
            return True
        if verdict.verdict == Verdict.ACCOUNT:
            # The account's problem: keep this email (no attempt spent) and stop.
            self._pause_account(text)
            self._release_rest(index, "account paused")
            return False
        failure_class = Email.FailureClass.BOUNCED if verdict.verdict == Verdict.BOUNCED else Email.FailureClass.REJECTED
        ledger.mark_failed(email_id=email.pk, token=self.token, code=code, text=text, failure_class=failure_class, now=now)
        self.report.failed += 1
        if verdict.verdict == Verdict.BOUNCED and email.contact_id:
            from campaigns.services import contacts

            contacts.suppress(contact_ids=[email.contact_id], status=Contact.Status.BOUNCED, now=now)
        return True

    # --- batch-level outcomes ----------------------------------------------------

    def _release_rest(self, index, why):
        ids = [e.pk for e in self.emails[index:]]
        self.report.released += ledger.release(token=self.token, now=self.clock(), email_ids=ids)
        self.report.notes.append(why)

    def _defer_rest(self, index, code, text):
        now = self.clock()
        for email in self.emails[index:]:
            if ledger.defer(email_id=email.pk, token=self.token, code=code, text=text, now=now):
                self.report.deferred += 1
        self.throttled = True
        self.report.notes.append(text)

    def _pause_account(self, reason):
        from accounts import services as account_services

        account_services.pause_account(account_id=self.account.pk, reason=reason, now=self.clock())

    def _still_holds(self, email):
        """Whether this row is still this worker's, renewing the batch's lease first when due.

        Asked right before each message goes out: a worker that stalled past its lease (a long
        wait, a stopped process, a paused VM) may find its rows returned to pending and claimed by
        another worker. The renewal is the fence: a row it does not renew is never sent from here.
        """
        now = self.clock()
        if (now - self.last_renewal).total_seconds() >= LEASE_RENEW_EVERY:
            self.held = ledger.renew_lease(token=self.token, now=now)
            self.last_renewal = now
        if self.held is None or email.pk in self.held:
            return True
        log.warning("batch %s: email %s is no longer this worker's (lease lost); not sent", self.token, email.pk)
        if self.pending_envelope is not None:
            self._close()  # its envelope was written ahead: drop the connection, never complete it
        return False

    def _close(self, quietly=False):
        if self.conn is not None:
            conn, self.conn = self.conn, None
            if self.pending_envelope is not None or self.in_data:
                # The server waits for a message's content: a QUIT would be read as content and
                # never answered. Dropping the connection makes it discard the unfinished message.
                smtp.drop(conn)
            else:
                smtp.close_quietly(conn)
        self.pending_envelope = None
