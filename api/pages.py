"""Cursor pagination: a page of rows in ascending id and the cursor after its last row.

A cursor is opaque to clients; today it is the last id written in base 36, so a client cannot read
meaning into it and the encoding may change without breaking one.
"""

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Protocol

from django.core.exceptions import ValidationError
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from ninja import Field, Schema

MAX_LIMIT = 500
DEFAULT_LIMIT = 100
CURSOR = r"^[0-9a-z]{1,13}$"


class PageQuery(Schema):
    cursor: str | None = Field(None, pattern=CURSOR, description="The next_cursor of the page before.")
    limit: int = Field(DEFAULT_LIMIT, ge=1, le=MAX_LIMIT)


def moment(text: str | None, name: str) -> datetime | None:
    """An RFC 3339 date-time of a query string, in UTC (read here: pydantic would take "0.5" as a Unix time)."""
    if text is None:
        return None
    try:
        # RFC 3339 allows a lower-case t and z, and a leap second, which Python's datetime does not.
        value = parse_datetime(text.upper().replace(":60", ":59"))
        if value is not None:
            # In UTC: PostgreSQL refuses offsets past 15:59 that RFC 3339 and Python allow.
            value = value.astimezone(UTC) if timezone.is_aware(value) else value.replace(tzinfo=UTC)
    except (ValueError, OverflowError):
        value = None
    if value is None:
        raise ValidationError({name: "Not a moment: use RFC 3339, e.g. 2026-12-08T10:00:00Z."})
    return value


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
