"""The request rate limit per API token: API_RATE_LIMIT requests in each fixed window of
API_RATE_WINDOW_SECONDS, counted atomically in Django's cache (Redis in production)."""

import time

from django.conf import settings

from accounts.rate_limits import over_limit
from api.models import ApiToken


def seconds_to_wait(token: ApiToken) -> int:
    """Count one request of `token`; 0 if it may go on, else the seconds until its window ends."""
    window = settings.API_RATE_WINDOW_SECONDS
    now = int(time.time())
    start = now - now % window
    if over_limit(f"api:rate:{token.pk}:{start}", limit=settings.API_RATE_LIMIT, window=window):
        return max(1, start + window - now)
    return 0
