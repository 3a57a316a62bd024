"""Writes of API tokens: made, revoked, and their last use recorded."""

import secrets
from datetime import datetime, timedelta

from django.db.models import Q

from accounts.models import User
from api.models import ApiToken
from api.selectors import TOKEN_PREFIX, digest

# A token's last use is written at most this often, so a busy token costs no write per request.
LAST_USED_RESOLUTION = timedelta(minutes=1)


def create_token(*, owner: User, name: str) -> tuple[ApiToken, str]:
    """A new token for `owner`; returns it and the token itself, which is never readable again."""
    name = name.strip()
    if not name:
        raise ValueError("A token needs a name that says what uses it.")
    raw = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken.objects.create(owner=owner, name=name[:100], prefix=raw[:12], digest=digest(raw))
    return token, raw


def revoke_token(*, token: ApiToken, now: datetime) -> bool:
    """Revoke `token` for good; returns whether it was live."""
    changed = ApiToken.objects.filter(pk=token.pk, revoked_at__isnull=True).update(revoked_at=now)
    token.revoked_at = token.revoked_at or now
    return bool(changed)


def record_use(*, token: ApiToken, now: datetime) -> None:
    stale = Q(last_used_at__isnull=True) | Q(last_used_at__lt=now - LAST_USED_RESOLUTION)
    if ApiToken.objects.filter(stale, pk=token.pk).update(last_used_at=now):
        token.last_used_at = now
