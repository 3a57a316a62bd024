"""Set-based writes of one chunk of an import: find, create, update, put on the list.

The chunk's rows go in with COPY into a session-local temporary table, then one
INSERT ... SELECT ... ON CONFLICT DO NOTHING RETURNING id, one UPDATE ... FROM and one
INSERT into the list's membership table. Every statement is filtered by the owner.
"""

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import connection, transaction

from contacts.addresses import normalize_address
from contacts.models import Contact

# json.dumps(value, ensure_ascii=False) builds a new encoder on every call (any non-default
# argument does); one encoder with the same settings gives the same text, once per chunk row.
_json_text = json.JSONEncoder(ensure_ascii=False).encode


@dataclass
class Existing:
    pk: int
    status: str
    name: str
    attributes: dict


def existing_contacts(*, owner: Any, addresses: Sequence[str]) -> dict[str, Existing]:
    """{address: Existing} for the owner's contacts among `addresses` (normalised)."""
    if not addresses:
        return {}
    # The unique index (lower(email), owner), probed once per address. As `lower(email) = ANY(%s)`
    # the planner may read all the owner's contacts instead (a sequential scan, or the owner index
    # without statistics): every chunk would cost as much as the owner's whole list.
    rows = _probe_per_address(
        addresses,
        columns="id, email, status, name, attributes",
        table=Contact._meta.db_table,
        where="lower(email) = a.address AND owner_id = %s",
        params=[owner.pk],
    )
    return {
        normalize_address(email): Existing(pk, status, name, _json(attrs)) for pk, email, status, name, attrs in rows
    }


def _probe_per_address(addresses, *, columns, table, where, params=()):
    """Rows of `table` for each of `addresses`, `where` naming the address `a.address`.

    One array parameter instead of thousands, and one index probe per address whatever the planner
    believes of the table: a LATERAL subquery with a LIMIT can only be run once per address (without
    the LIMIT the planner may make it a join against a scan of the whole table). At most one row an
    address: `where` must name a unique key.
    """
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT t.* FROM unnest(%s::text[]) AS a(address) CROSS JOIN LATERAL ("
            f"SELECT {columns} FROM {table} WHERE {where} LIMIT 1) AS t",
            [list(addresses), *params],
        )
        return cursor.fetchall()


def seen_addresses():
    """The addresses an import has read so far, each with the outcome of its first row.

    A context manager: a temporary table of the session, so this process's memory does not grow
    with the file.
    """
    return _SeenTable()


class _SeenTable:
    TABLE = "import_seen_addresses"

    def __enter__(self):
        with connection.cursor() as cursor:
            # One import at a time on a connection; a table left by one that failed is dropped here.
            cursor.execute(f"DROP TABLE IF EXISTS {self.TABLE}")
            cursor.execute(f"CREATE TEMP TABLE {self.TABLE} (address text PRIMARY KEY, first_outcome text NOT NULL)")
        return self

    def __exit__(self, exc_type, *exc_info):
        # After an error the transaction may be unusable: the table goes with the session, or with
        # the next import's DROP above.
        if exc_type is None:
            with connection.cursor() as cursor:
                cursor.execute(f"DROP TABLE IF EXISTS {self.TABLE}")

    def first_outcomes(self, addresses):
        if not addresses:
            return {}
        # Autovacuum never analyses a temporary table; without statistics the planner may join against a
        # scan of the whole table for every chunk, a cost that grows with the file.
        return dict(
            _probe_per_address(
                addresses, columns="address, first_outcome", table=self.TABLE, where="address = a.address"
            )
        )

    def remember(self, first_outcomes):
        if not first_outcomes:
            return
        with connection.cursor() as wrapper:
            with wrapper.cursor.copy(f"COPY {self.TABLE} (address, first_outcome) FROM STDIN") as copy:
                for row in first_outcomes.items():
                    copy.write_row(row)


def _json(value):
    if isinstance(value, (bytes, str)):
        return json.loads(value) if value else {}
    return value or {}


def write_chunk(
    *,
    owner: Any,
    contact_lists: Sequence[Any],
    to_create: list[tuple[str, str, dict[str, str]]],
    to_update: list[tuple[int, str, dict[str, str]]],
    on_list: list[int],
    now: datetime,
    durable: bool = False,
) -> int:
    """to_create: [(address, name, attributes)]; to_update: [(pk, name, attributes)]; on_list: [pk].

    Every contact created, and those of on_list, go on each of `contact_lists` (the owner's).
    `durable`: the commit waits for its WAL flush, for a caller that answers as soon as it returns."""
    with transaction.atomic():
        if not durable:
            # No wait for this transaction's WAL flush: an import's status update after every chunk is a
            # synchronous commit, so once it is durable every chunk before it is too.
            with connection.cursor() as cursor:
                cursor.execute("SET LOCAL synchronous_commit TO OFF")
        return _copy_and_write(
            owner=owner, contact_lists=contact_lists, to_create=to_create, to_update=to_update, on_list=on_list, now=now
        )


def _copy_and_write(*, owner, contact_lists, to_create, to_update, on_list, now):

    contact_table = Contact._meta.db_table
    through = Contact.lists.through._meta
    list_column = through.get_field("contactlist").column
    contact_column = through.get_field("contact").column
    on_list = list(on_list)
    with connection.cursor() as wrapper:
        cursor = wrapper.cursor  # the psycopg cursor, for COPY
        if to_create:
            cursor.execute(
                "CREATE TEMP TABLE IF NOT EXISTS import_new_contacts (email text, name text, attributes jsonb)"
            )
            cursor.execute("TRUNCATE import_new_contacts")
            with cursor.copy("COPY import_new_contacts (email, name, attributes) FROM STDIN") as copy:
                for address, name, attributes in to_create:
                    copy.write_row((address, name, _json_text(attributes)))
            cursor.execute(
                f"INSERT INTO {contact_table} (owner_id, email, name, attributes, status, created_at, updated_at) "
                "SELECT %s, email, name, attributes, %s, %s, %s FROM import_new_contacts "
                "ON CONFLICT DO NOTHING RETURNING id",
                [owner.pk, Contact.Status.SUBSCRIBED, now, now],
            )
            inserted = [row[0] for row in cursor.fetchall()]
            on_list.extend(inserted)
            if len(inserted) < len(to_create):
                # A concurrent import created some of them first: they are this owner's all the same.
                found = existing_contacts(owner=owner, addresses=[a for a, _, _ in to_create])
                on_list.extend(e.pk for e in found.values())
        if to_update:
            cursor.execute(
                "CREATE TEMP TABLE IF NOT EXISTS import_updated_contacts (id bigint, name text, attributes jsonb)"
            )
            cursor.execute("TRUNCATE import_updated_contacts")
            with cursor.copy("COPY import_updated_contacts (id, name, attributes) FROM STDIN") as copy:
                for pk, name, attributes in to_update:
                    copy.write_row((pk, name, _json_text(attributes)))
            cursor.execute(
                f"UPDATE {contact_table} AS c SET name = u.name, attributes = u.attributes, updated_at = %s "
                "FROM import_updated_contacts AS u WHERE c.id = u.id AND c.owner_id = %s",
                [now, owner.pk],
            )
        if on_list and contact_lists:
            # The ids come from the owner-filtered lookup and insert above.
            cursor.execute(
                f"INSERT INTO {through.db_table} ({list_column}, {contact_column}) "
                "SELECT l, c FROM unnest(%s::bigint[]) AS l, unnest(%s::bigint[]) AS c ON CONFLICT DO NOTHING",
                [[contact_list.pk for contact_list in contact_lists], sorted(set(on_list))],
            )
    return len(to_create)
