"""The rate an SMTP account sends at: its configured maximum, or the lower rate learned from its
server's throttling (delivery.adaptive_rate learns it)."""

from sending.models import SmtpAccount


def effective_per_minute(account: SmtpAccount) -> float:
    """The rate the account sends at: its maximum, or less when a lower limit was learned."""
    return current_rate(account.max_per_minute, account.learned_per_minute)


def current_rate(max_per_minute: int, learned_per_minute: float | None) -> float:
    if learned_per_minute is None:
        return float(max_per_minute)
    return max(1.0, min(float(max_per_minute), learned_per_minute))


def forget_learned_rate(*, account_id: int) -> None:
    """The marketer changed the account's limits: start again from the configured maximum."""
    SmtpAccount.objects.filter(pk=account_id).update(
        learned_per_minute=None,
        observed_limit_per_minute=None,
        rate_note="",
        rate_changed_at=None,
        last_throttled_at=None,
    )
