"""Cursor pagination: a page of rows in ascending id and the cursor after its last row.

A cursor is opaque to clients; today it is the last id written in base 36, so a client cannot read
meaning into it and the encoding may change without breaking one.
"""

from collections.abc import Sequence
from typing import Protocol

from django.core.exceptions import ValidationError

MAX_LIMIT = 500
DEFAULT_LIMIT = 100


class HasPk(Protocol):
    pk: int


def after_id(cursor: str | None) -> int:
    if not cursor:
        return 0
    try:
        value = int(cursor, 36)
    except ValueError:
        value = -1
    if value < 0 or len(cursor) > 13:
        raise ValidationError({"cursor": "Not a cursor this API gave out."})
    return value


def next_cursor(rows: Sequence[HasPk], limit: int) -> str | None:
    if len(rows) < limit:
        return None
    return _base36(rows[-1].pk)


def _base36(number: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while True:
        number, rest = divmod(number, 36)
        out = digits[rest] + out
        if not number:
            return out
