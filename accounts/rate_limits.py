"""Per-hour limits of the anonymous account forms (sign-up, password reset), counted in Django's cache.

A limit is counted per client (accounts.client_address.rate_limit_key) and per email address typed;
an address counts the same whether an account has it or not, so being limited reveals nothing.
"""

from django.conf import settings
from django.core.cache import cache
from django.utils.crypto import salted_hmac


class RateLimited(Exception):
    """Said on the page as it is; the form keeps what was typed."""


def count_sign_up(*, client_key: str, email: str) -> None:
    """Count one sign-up; raises RateLimited once the client or the address is past its limit."""
    if _over_hour(f"signup:client:{client_key}", settings.SIGNUP_LIMIT_PER_IP):
        raise RateLimited("Too many sign-ups from your network in the last hour. Please try again later.")
    if _over_hour(f"signup:address:{_address_digest(email)}", settings.SIGNUP_LIMIT_PER_ADDRESS):
        raise RateLimited(
            "We have sent this address several emails in the last hour. Look in its inbox (and spam folder), "
            "or try again later."
        )


def count_password_reset(*, client_key: str, email: str) -> None:
    """Count one password reset request; raises RateLimited once the client or the address is past its limit."""
    if _over_hour(f"password-reset:client:{client_key}", settings.PASSWORD_RESET_LIMIT_PER_IP):
        raise RateLimited(
            "Too many password reset requests from your network in the last hour. Please try again later."
        )
    if _over_hour(f"password-reset:address:{_address_digest(email)}", settings.PASSWORD_RESET_LIMIT_PER_ADDRESS):
        raise RateLimited(
            "Too many password reset requests for this address in the last hour. Look in its inbox "
            "(and spam folder), or try again later."
        )


def over_limit(key: str, *, limit: int, window: int) -> bool:
    """Count one hit on `key` in a fixed window of `window` seconds (the cache's atomic add and incr);
    True once past `limit`. Every anonymous form's limits count with it."""
    cache.add(key, 0, timeout=window)
    try:
        count = cache.incr(key)
    except ValueError:  # expired between add and incr
        cache.set(key, 1, timeout=window)
        count = 1
    return count > limit


def limit_reached(key: str, *, limit: int) -> bool:
    """Whether `key` has had `limit` hits or more in its running window, counting none."""
    count = cache.get(key)
    return count is not None and int(count) >= limit


def _over_hour(key, limit):
    return over_limit(key, limit=limit, window=settings.ACCOUNT_FORMS_RATE_WINDOW)


def _address_digest(email: str) -> str:
    # Keyed, so the cache holds no addresses; case-folded, as accounts match addresses.
    return salted_hmac("accounts.rate_limits.address", email.strip().lower(), algorithm="sha256").hexdigest()
