"""Reads for SMTP accounts."""

from datetime import datetime, timedelta

from django.conf import settings

from accounts.models import User
from sending.models import EspWebhook, SmtpAccount, SmtpAccountState


def connection_test_waiting(*, account: SmtpAccount, now: datetime) -> bool:
    """Whether the account's connection test was asked for and has not reported yet, recently enough
    that a worker may still be on it: a test takes at most about two SMTP_TIMEOUTs once a worker
    has it, so a much older "Testing…" is a test no worker took (none running, or the broker lost it)."""
    state = account.state
    if state.last_test_result != SmtpAccountState.CONNECTION_TESTING or state.last_tested_at is None:
        return False
    return now - state.last_tested_at < connection_test_patience()


def connection_test_patience() -> timedelta:
    return timedelta(seconds=10 * settings.SMTP_TIMEOUT + 60)


def esp_webhook_of(*, account: SmtpAccount) -> EspWebhook | None:
    return EspWebhook.objects.filter(account=account).first()


def only_account_of(*, owner: User) -> int | None:
    """The id of the owner's SMTP account when they have exactly one (a new campaign's preselected choice)."""
    ids = list(SmtpAccount.objects.filter(owner=owner).values_list("pk", flat=True)[:2])
    return ids[0] if len(ids) == 1 else None


def next_connection_try(*, state: SmtpAccountState, now: datetime) -> datetime:
    """When the engine next tries an unreachable account's server: the end of its rest, or the next tick
    when that rest is over."""
    return max(state.backoff_until or now, now)
