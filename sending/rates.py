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


def seconds_to_send(account: SmtpAccount, emails: int) -> int:
    """How long the account takes to send `emails` at the earliest, at its rate and within its hourly and
    daily limits (each window's worth goes out, then the next waits for the window to pass). A lower
    bound: retries of deferred emails and other campaigns on the account only add to it."""
    if emails <= 0:
        return 0
    at_rate = emails / effective_per_minute(account) * 60
    windows = [
        ((emails - 1) // limit) * length
        for limit, length in ((account.max_per_hour, 3600), (account.max_per_day, 86400))
    ]
    return round(max(at_rate, *windows))
