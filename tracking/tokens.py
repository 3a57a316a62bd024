"""Signed tokens for the tracking URLs: one salt per purpose, never the address.

A token is `<payload>.<signature>` where the payload is the Email id (and, for a
click, the Link id). django.core.signing compares signatures in constant time
and honours SECRET_KEY_FALLBACKS, so keys can be rotated without breaking the
links of mail already sent. A token of one purpose never validates as another:
each purpose signs with its own salt.
"""

import functools

from django.conf import settings
from django.core import signing

OPEN, CLICK, UNSUBSCRIBE = "open", "click", "unsubscribe"
_SALTS = {purpose: f"tracking.{purpose}" for purpose in (OPEN, CLICK, UNSUBSCRIBE)}
_SEP = "."
_MAX_LENGTH = 200


def _signer(purpose: str) -> signing.Signer:
    # One Signer per purpose and keys: building one costs more than the signing (measured in
    # BENCHMARKS.md, Costs behind the code), and two or three tokens go into every message sent.
    # A key change makes a new one.
    return _signer_for(purpose, settings.SECRET_KEY, tuple(settings.SECRET_KEY_FALLBACKS))


@functools.lru_cache(maxsize=16)
def _signer_for(purpose: str, key: str, fallback_keys: tuple[str, ...]) -> signing.Signer:
    return signing.Signer(
        key=key, fallback_keys=list(fallback_keys), salt=_SALTS[purpose], sep=_SEP, algorithm="sha256"
    )


def make(purpose: str, *ids: int) -> str:
    return _signer(purpose).sign("-".join(str(int(i)) for i in ids))


def read(purpose: str, token: str | None, *, parts: int) -> tuple[int, ...] | None:
    """The tuple of `parts` ids a valid token of `purpose` carries, or None."""
    if not token or len(token) > _MAX_LENGTH:
        return None
    try:
        payload = _signer(purpose).unsign(token)
    except signing.BadSignature:
        return None
    pieces = payload.split("-")
    if len(pieces) != parts or not all(p.isdigit() for p in pieces):
        return None
    return tuple(int(p) for p in pieces)


def open_token(email_id: int) -> str:
    return make(OPEN, email_id)


def click_token(email_id: int, link_id: int) -> str:
    return make(CLICK, email_id, link_id)


def unsubscribe_token(email_id: int) -> str:
    return make(UNSUBSCRIBE, email_id)


def read_open(token: str | None) -> int | None:
    ids = read(OPEN, token, parts=1)
    return ids[0] if ids else None


def read_click(token: str | None) -> tuple[int, ...] | None:
    """(email_id, link_id) or None."""
    return read(CLICK, token, parts=2)


def read_unsubscribe(token: str | None) -> int | None:
    ids = read(UNSUBSCRIBE, token, parts=1)
    return ids[0] if ids else None
