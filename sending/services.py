"""Writes for SMTP accounts: secrets, DKIM keys, and the engine's state row (SmtpAccountState): pauses,
outage backoff, connection tests, forgetting a learned rate; their bounce mailboxes. The pacing clock
and the learned rate itself are delivery.rate_limit's and delivery.adaptive_rate's."""

import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from sending import crypto, dkim, esp_webhooks, mailbox_sessions, smtp
from sending.models import BounceMailbox, SmtpAccount, SmtpAccountState

log = logging.getLogger(__name__)


SECRET_FIELDS = ("password", "dkim_private_key")


def rotate_encryption_keys() -> int:
    """Re-encrypt every stored secret (SMTP and bounce mailbox passwords, DKIM keys, ESP webhooks'
    secrets) with the newest key; returns the number of secrets rewritten."""
    rotated = 0
    with transaction.atomic():
        accounts = SmtpAccount.objects.select_for_update().only("pk", *SECRET_FIELDS)
        for account in accounts.exclude(password="", dkim_private_key=""):
            new_tokens = {}
            for name in SECRET_FIELDS:
                token = getattr(account, name)
                if not token:
                    continue
                try:
                    new_tokens[name] = crypto.rotate(token)
                except crypto.DecryptionError as exc:
                    raise crypto.DecryptionError(f"SMTP account {account.pk} ({name}): {exc}") from exc
            SmtpAccount.objects.filter(pk=account.pk).update(**new_tokens)
            rotated += len(new_tokens)
        for mailbox in BounceMailbox.objects.select_for_update().exclude(password="").only("pk", "password"):
            try:
                new_token = crypto.rotate(mailbox.password)
            except crypto.DecryptionError as exc:
                raise crypto.DecryptionError(f"Bounce mailbox {mailbox.pk}: {exc}") from exc
            BounceMailbox.objects.filter(pk=mailbox.pk).update(password=new_token)
            rotated += 1
        rotated += esp_webhooks.rotate_secrets()
    return rotated


def generate_dkim_key(
    *, account: SmtpAccount, domain: str, selector: str, algorithm: str, now: datetime
) -> dkim.DkimRecord:
    """Make a new DKIM key for the account (RSA 2048 or Ed25519), store it encrypted with the domain and
    selector it is published under, and return the TXT record to publish. Replaces any key the account
    had (a rotation): messages signed from now on need the new record, so a new selector lets the old
    record stay published for the mail still on its way.

    Raises dkim.DkimSetupError, before anything is written, for a domain that is no domain or does not
    align with the account's From address, a selector that is no DNS label, an unknown algorithm."""
    domain = dkim.normalise_domain(domain)
    selector = dkim.normalise_selector(selector)
    if algorithm not in SmtpAccount.DkimAlgorithm.values:
        raise dkim.DkimSetupError(f"Unknown DKIM algorithm {algorithm!r}: use rsa-sha256 or ed25519-sha256.")
    dkim.check_alignment(domain, account.from_email)
    pem = dkim.generate_private_key(algorithm)
    account.dkim_domain, account.dkim_selector, account.dkim_algorithm = domain, selector, algorithm
    account.set_dkim_private_key(pem)
    account.dkim_key_created_at = now
    # Only these columns: the account's form or the key rotation may write others of this row meanwhile.
    account.save(
        update_fields=[
            "dkim_domain",
            "dkim_selector",
            "dkim_algorithm",
            "dkim_private_key",
            "dkim_key_created_at",
            "updated_at",
        ]
    )
    log.info("SMTP account %s has a new DKIM key (%s, %s._domainkey.%s)", account.pk, algorithm, selector, domain)
    return dkim.record_for(domain=domain, selector=selector, algorithm=algorithm, private_pem=pem)


def set_dkim_signing(*, account: SmtpAccount, enabled: bool) -> None:
    """Turn DKIM signing on or off. Raises dkim.DkimSetupError when turning it on is refused: no key, or
    a key whose domain no longer aligns with the From address."""
    if enabled:
        if not account.has_dkim_key:
            raise dkim.DkimSetupError("Generate a DKIM key first, and publish its TXT record.")
        dkim.check_alignment(account.dkim_domain, account.from_email)
    account.dkim_enabled = enabled
    account.save(update_fields=["dkim_enabled", "updated_at"])


def pause_account(*, account_id: int, reason: str, now: datetime, seconds: float | None = None) -> datetime:
    """Stop an SMTP account sending until now + seconds (ACCOUNT_PAUSE_SECONDS by default); returns the end.

    The sending engine pauses an account on quota and authentication failures, a password it
    cannot decrypt and a refused destination: the dispatcher claims nothing for it meanwhile, and
    the reason shows on the account and the dashboard. A new pause replaces the one running.
    """
    until = now + timedelta(seconds=settings.ACCOUNT_PAUSE_SECONDS if seconds is None else seconds)
    SmtpAccountState.objects.filter(account_id=account_id).update(
        paused_until=until, pause_reason=reason, paused_at=now
    )
    log.warning("SMTP account %s paused until %s: %s", account_id, until.isoformat(), reason)
    return until


def resume_account(*, account_id: int, now: datetime) -> bool:
    """Let a paused account send again at once (its owner fixed the cause); returns whether it was paused."""
    resumed = SmtpAccountState.objects.filter(account_id=account_id, paused_until__gt=now).update(
        paused_until=None, pause_reason="", paused_at=None
    )
    if resumed:
        log.info("SMTP account %s resumed", account_id)
    return bool(resumed)


def back_off_account(*, account_id: int, error: str, now: datetime) -> datetime | None:
    """The account's server cannot be reached (refused, TLS handshake, timeout, dropped before
    MAIL): rest ACCOUNT_BACKOFF_BASE_SECONDS, doubling with each failed try up to
    ACCOUNT_BACKOFF_MAX_SECONDS. Returns the end of the rest, or None when the account already
    rests (another batch of it failed first: one outage step is counted, and logged, once).

    The dispatcher claims nothing for the account meanwhile; the emails wait unspent.
    """
    with transaction.atomic():
        state = (
            SmtpAccountState.objects.select_for_update()
            .filter(account_id=account_id)
            .only("backoff_seconds", "backoff_until", "unreachable_since")
            .first()
        )
        if state is None or (state.backoff_until and state.backoff_until > now):
            return None
        seconds = next_backoff_seconds(previous=state.backoff_seconds)
        until = now + timedelta(seconds=seconds)
        SmtpAccountState.objects.filter(account_id=account_id).update(
            backoff_seconds=seconds,
            backoff_until=until,
            unreachable_since=state.unreachable_since or now,
            last_connection_error=error,
            last_connection_error_at=now,
        )
    log.warning(
        "SMTP account %s cannot reach its server (%s); next try in %d s at %s",
        account_id,
        error,
        seconds,
        until.isoformat(),
    )
    return until


def next_backoff_seconds(*, previous: int) -> int:
    base, cap = settings.ACCOUNT_BACKOFF_BASE_SECONDS, settings.ACCOUNT_BACKOFF_MAX_SECONDS
    return min(cap, max(base, previous * 2))


def clear_backoff(*, account_id: int) -> bool:
    """The account's server answered again: end the outage; returns whether there was one.

    The last error and its time stay on the account as its history."""
    cleared = SmtpAccountState.objects.filter(account_id=account_id, unreachable_since__isnull=False).update(
        backoff_seconds=0, backoff_until=None, unreachable_since=None
    )
    if cleared:
        log.info("SMTP account %s reaches its server again", account_id)
    return bool(cleared)


# --- "Test connection", run by a Celery task: a slow server must not hold a web worker -------------


def start_connection_test(*, account: SmtpAccount, enqueue: Callable[[int], object]) -> None:
    """Mark the account as being tested (last_test_result "Testing…", last_tested_at the request's time)
    and hand the test to `enqueue(account_id)`."""
    SmtpAccountState.objects.filter(account_id=account.pk).update(
        last_tested_at=timezone.now(), last_test_result=SmtpAccountState.CONNECTION_TESTING
    )
    enqueue(account.pk)


def run_connection_test(*, account_id: int) -> smtp.TestResult | None:
    """Connect, negotiate TLS, log in, and record the server's answer on the account (the task's work).
    Returns the smtp.TestResult, or None for an account deleted since."""
    account = SmtpAccount.objects.filter(pk=account_id).first()
    if account is None:
        return None
    try:
        result = smtp.test_connection(account)
    except Exception as exc:  # noqa: BLE001 - a bug: the list says so instead of "Testing…" for ever
        log.exception("connection test of SMTP account %s failed", account_id)
        result = smtp.TestResult(False, f"error while testing: {type(exc).__name__}: {exc}")
    record_test_result(account_id=account_id, result=result)
    return result


def connection_test_not_queued(*, account_id: int, error: Exception) -> None:
    """The test could not be handed to a worker: say so instead of "Testing…" for ever."""
    record_test_result(account_id=account_id, result=smtp.TestResult(False, f"The test could not be queued: {error}"))


def record_test_result(*, account_id: int, result: smtp.TestResult) -> None:
    """Store a connection test's answer on the account ("OK: ..." or "Failed: ...", and when)."""
    SmtpAccountState.objects.filter(account_id=account_id).update(
        last_tested_at=timezone.now(), last_test_result=("OK: " if result.ok else "Failed: ") + result.message
    )


# --- the learned rate ------------------------------------------------------------------------------


def forget_learned_rate(*, account_id: int) -> None:
    """The marketer changed the account's limits: start again from the configured maximum."""
    SmtpAccountState.objects.filter(account_id=account_id).update(
        learned_per_minute=None,
        observed_limit_per_minute=None,
        rate_note="",
        rate_changed_at=None,
        last_throttled_at=None,
    )


# --- Bounce mailboxes ------------------------------------------------------------------------------


def configure_bounce_mailbox(
    *,
    account: SmtpAccount,
    protocol: str,
    host: str,
    port: int,
    security: str,
    username: str,
    password: str,
    folder: str = "INBOX",
    enabled: bool = True,
) -> BounceMailbox:
    """Create or replace the account's bounce mailbox settings (the password encrypted); its history
    (last read, errors, count) stays. Raises ValidationError, naming each bad field, and saves nothing."""
    mailbox = BounceMailbox.objects.filter(account=account).first() or BounceMailbox(account=account)
    mailbox.protocol, mailbox.host, mailbox.port, mailbox.security = protocol, host.strip(), port, security
    mailbox.username, mailbox.folder, mailbox.enabled = username, folder, enabled
    mailbox.set_password(password)
    mailbox.full_clean()
    mailbox.save()
    return mailbox


def record_mailbox_read(*, mailbox_id: int, processed: int) -> None:
    """A read of the mailbox ended well: its time, and the messages it processed added to the count."""
    BounceMailbox.objects.filter(pk=mailbox_id).update(
        last_checked_at=timezone.now(), processed_count=F("processed_count") + processed
    )


def record_mailbox_error(*, mailbox_id: int, error: str, processed: int) -> None:
    """A read of the mailbox failed (`error` says why, for its owner) after processing `processed` messages."""
    now = timezone.now()
    BounceMailbox.objects.filter(pk=mailbox_id).update(
        last_checked_at=now,
        last_error=error,
        last_error_at=now,
        processed_count=F("processed_count") + processed,
    )
    log.warning("bounce mailbox %s cannot be read: %s", mailbox_id, error)


def start_mailbox_test(*, mailbox: BounceMailbox, enqueue: Callable[[int], object]) -> None:
    """Mark the mailbox as being tested and hand the test to `enqueue(mailbox_id)`: a slow server must
    not hold a web worker."""
    BounceMailbox.objects.filter(pk=mailbox.pk).update(
        last_tested_at=timezone.now(), last_test_result=BounceMailbox.TESTING
    )
    enqueue(mailbox.pk)


def run_mailbox_test(*, mailbox_id: int) -> mailbox_sessions.ProbeResult | None:
    """Log in to the mailbox and open its folder; record what happened (the task's work). Returns the
    result, or None for a mailbox deleted since."""
    mailbox = BounceMailbox.objects.filter(pk=mailbox_id).first()
    if mailbox is None:
        return None
    try:
        result = mailbox_sessions.probe(mailbox)
    except Exception as exc:  # noqa: BLE001 - a bug: the page says so instead of "Testing…" for ever
        log.exception("test of bounce mailbox %s failed", mailbox_id)
        result = mailbox_sessions.ProbeResult(False, f"error while testing: {type(exc).__name__}: {exc}")
    _record_mailbox_test(mailbox_id=mailbox_id, result=result)
    return result


def mailbox_test_not_queued(*, mailbox_id: int, error: Exception) -> None:
    """The test could not be handed to a worker: say so instead of "Testing…" for ever."""
    _record_mailbox_test(
        mailbox_id=mailbox_id, result=mailbox_sessions.ProbeResult(False, f"The test could not be queued: {error}")
    )


def _record_mailbox_test(*, mailbox_id: int, result: mailbox_sessions.ProbeResult) -> None:
    BounceMailbox.objects.filter(pk=mailbox_id).update(
        last_tested_at=timezone.now(), last_test_result=("OK: " if result.ok else "Failed: ") + result.message
    )
