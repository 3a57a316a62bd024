"""Writes for SMTP accounts: secrets, pauses, outage backoff, connection tests."""

import logging
from collections.abc import Callable
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from sending import crypto, esp_webhooks, smtp
from sending.models import SmtpAccount

log = logging.getLogger(__name__)


def rotate_encryption_keys() -> int:
    """Re-encrypt every stored secret (SMTP passwords, ESP webhooks' secrets) with the newest key;
    returns the number of rows rewritten."""
    rotated = 0
    with transaction.atomic():
        for account in SmtpAccount.objects.select_for_update().exclude(password="").only("pk", "password"):
            try:
                new_token = crypto.rotate(account.password)
            except crypto.DecryptionError as exc:
                raise crypto.DecryptionError(f"SMTP account {account.pk}: {exc}") from exc
            SmtpAccount.objects.filter(pk=account.pk).update(password=new_token)
            rotated += 1
        rotated += esp_webhooks.rotate_secrets()
    return rotated


def pause_account(*, account_id: int, reason: str, now: datetime, seconds: float | None = None) -> datetime:
    """Stop an SMTP account sending until now + seconds (ACCOUNT_PAUSE_SECONDS by default); returns the end.

    The sending engine pauses an account on quota and authentication failures, a password it
    cannot decrypt and a refused destination: the dispatcher claims nothing for it meanwhile, and
    the reason shows on the account and the dashboard. A new pause replaces the one running.
    """
    until = now + timedelta(seconds=settings.ACCOUNT_PAUSE_SECONDS if seconds is None else seconds)
    SmtpAccount.objects.filter(pk=account_id).update(paused_until=until, pause_reason=reason, updated_at=now)
    log.warning("SMTP account %s paused until %s: %s", account_id, until.isoformat(), reason)
    return until


def resume_account(*, account_id: int, now: datetime) -> bool:
    """Let a paused account send again at once (its owner fixed the cause); returns whether it was paused."""
    resumed = SmtpAccount.objects.filter(pk=account_id, paused_until__gt=now).update(
        paused_until=None, pause_reason="", updated_at=now
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
        account = (
            SmtpAccount.objects.select_for_update()
            .filter(pk=account_id)
            .only("backoff_seconds", "backoff_until", "unreachable_since")
            .first()
        )
        if account is None or (account.backoff_until and account.backoff_until > now):
            return None
        seconds = next_backoff_seconds(previous=account.backoff_seconds)
        until = now + timedelta(seconds=seconds)
        SmtpAccount.objects.filter(pk=account_id).update(
            backoff_seconds=seconds,
            backoff_until=until,
            unreachable_since=account.unreachable_since or now,
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
    cleared = SmtpAccount.objects.filter(pk=account_id, unreachable_since__isnull=False).update(
        backoff_seconds=0, backoff_until=None, unreachable_since=None
    )
    if cleared:
        log.info("SMTP account %s reaches its server again", account_id)
    return bool(cleared)


# --- "Test connection", run by a Celery task: a slow server must not hold a web worker -------------


def start_connection_test(*, account: SmtpAccount, enqueue: Callable[[int], object]) -> None:
    """Mark the account as being tested (last_test_result "Testing…", last_tested_at the request's time)
    and hand the test to `enqueue(account_id)`."""
    SmtpAccount.objects.filter(pk=account.pk).update(
        last_tested_at=timezone.now(), last_test_result=SmtpAccount.CONNECTION_TESTING
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
    smtp.record_test_result(account=account, result=result)
    return result


def connection_test_not_queued(*, account_id: int, error: Exception) -> None:
    """The test could not be handed to a worker: say so instead of "Testing…" for ever."""
    account = SmtpAccount.objects.filter(pk=account_id).first()
    if account is not None:
        result = smtp.TestResult(False, f"The test could not be queued: {error}")
        smtp.record_test_result(account=account, result=result)
