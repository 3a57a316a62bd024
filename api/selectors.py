"""Reads of API tokens: the token a request's bearer string names."""

import hashlib

from accounts.models import users_with_access_q
from api.models import ApiToken

TOKEN_PREFIX = "ecm_"


def digest(raw: str) -> str:
    return hashlib.sha256(raw.encode()).hexdigest()


def live_token(raw: str) -> ApiToken | None:
    """The unrevoked token `raw` names, with its owner, if the owner may still log in and send."""
    if not raw.startswith(TOKEN_PREFIX) or len(raw) > 100:
        return None
    return (
        ApiToken.objects.select_related("owner")
        .filter(users_with_access_q("owner__"), digest=digest(raw), revoked_at__isnull=True)
        .first()
    )
