"""The rate an SMTP account sends at: its configured maximum, or the lower rate learned from its
server's throttling (delivery.adaptive_rate learns it)."""

from sending.models import SmtpAccount


def effective_per_minute(account: SmtpAccount) -> float:
    """The rate the account sends at: its maximum, or less when a lower limit was learned (read on its
    state row: select_related("state") where accounts are listed)."""
    return current_rate(account.max_per_minute, account.state.learned_per_minute)


def current_rate(max_per_minute: int, learned_per_minute: float | None) -> float:
    if learned_per_minute is None:
        return float(max_per_minute)
    return max(1.0, min(float(max_per_minute), learned_per_minute))
