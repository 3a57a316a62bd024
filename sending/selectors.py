"""Reads for SMTP accounts."""

from datetime import datetime, timedelta

from django.conf import settings
from django.core.cache import cache

from accounts.models import User
from sending.models import EspWebhook, SmtpAccount, SmtpAccountState

# {domain: account id} of every verified tracking domain; sending.tracking_domains drops it whenever
# one changes, and it expires anyway after VERIFIED_TRACKING_DOMAINS_SECONDS.
VERIFIED_TRACKING_DOMAINS_KEY = "sending:verified-tracking-domains:v1"
VERIFIED_TRACKING_DOMAINS_SECONDS = 300


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


def verified_tracking_domains() -> dict[str, int]:
    """{tracking domain: its account's id} of every verified tracking domain, from the cache (one
    query when it is cold). The web's host check reads it for every host that is not the site's."""
    domains: dict[str, int] | None = cache.get(VERIFIED_TRACKING_DOMAINS_KEY)
    if domains is None:
        domains = dict(
            SmtpAccount.objects.exclude(tracking_domain="")
            .filter(tracking_domain_verified_at__isnull=False)
            .values_list("tracking_domain", "pk")
        )
        cache.set(VERIFIED_TRACKING_DOMAINS_KEY, domains, VERIFIED_TRACKING_DOMAINS_SECONDS)
    return domains


def tracking_domain_being_checked(*, domain: str, since: datetime) -> bool:
    """Whether a check of this (unverified) tracking domain started after `since`: the TLS proxy may
    then get its certificate, which the check's HTTPS fetch needs."""
    return SmtpAccount.objects.filter(
        tracking_domain=domain, tracking_domain_verified_at__isnull=True, tracking_domain_checked_at__gte=since
    ).exists()
