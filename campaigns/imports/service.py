"""The contact import: one code path for the dry run (preview) and the real run.

Rows are read in chunks. Per chunk: one query finds the owner's existing contacts
among the chunk's addresses, one INSERT creates the new ones, one bulk UPDATE
merges into the existing ones, one INSERT puts them all on the list. Every query
is filtered by the importing owner: a file can name any address or id it likes,
it only ever reaches that owner's contacts and lists.

What becomes of a row (its `outcome`):
- created: a new contact, subscribed, put on the list;
- updated: the owner had this address already (any case): non-empty cells
  overwrite name and attributes, empty cells erase nothing, status is kept;
- merged: the address appeared earlier in the file (any case); merged into that row;
- suppressed: the owner's contact is unsubscribed, bounced or complained: the
  contact is left exactly as it is and kept off the list (never resubscribed);
- rejected: no usable address; reported with the row number and the reason.
Blank rows are counted and otherwise ignored.
"""

import logging
from dataclasses import dataclass, field

from django.conf import settings
from django.utils import timezone

from campaigns.imports import writers
from campaigns.imports.addresses import address_problem, normalize_address
from campaigns.imports.columns import map_columns
from campaigns.imports.reader import FileRefused, count_rows, open_table

log = logging.getLogger(__name__)

CREATED, UPDATED, MERGED, SUPPRESSED, REJECTED = "created", "updated", "merged", "suppressed", "rejected"
OUTCOMES = (CREATED, UPDATED, MERGED, SUPPRESSED, REJECTED)
MAX_NAME = 200
MAX_ATTRIBUTE_VALUE = 2000

__all__ = ["FileRefused", "ImportResult", "RowOutcome", "import_file"]


@dataclass
class RowOutcome:
    row: int
    address: str
    outcome: str
    reason: str = ""
    name: str = ""

    def as_dict(self):
        return {"row": self.row, "address": self.address, "outcome": self.outcome, "reason": self.reason,
                "name": self.name}


@dataclass
class ImportResult:
    dry_run: bool
    file_description: str = ""
    columns: list = field(default_factory=list)  # [(header, meaning)]
    counts: dict = field(default_factory=lambda: dict.fromkeys(OUTCOMES, 0))
    blank_rows: int = 0
    processed_rows: int = 0
    rejected: list = field(default_factory=list)  # [{"row", "address", "reason"}]
    outcomes: list = field(default_factory=list)  # the first `keep_outcomes` RowOutcome

    @property
    def total_rows(self):
        return self.processed_rows


@dataclass
class _Record:
    """One address of a chunk: the rows naming it, merged in file order."""

    address: str
    first_row: int
    new_in_file: bool  # False: an earlier chunk had it already
    name: str = ""
    attributes: dict = field(default_factory=dict)
    rows: list = field(default_factory=list)  # RowOutcome, outcome set once classified


def import_file(*, owner, path, filename="", encoding="", contact_list=None, dry_run, progress=None,
                chunk_size=None, keep_outcomes=0):
    """Import the contacts in `path` for `owner` into `contact_list` (None in a dry run only).

    `progress(processed_rows)` is called after each chunk. Raises FileRefused when
    the file as a whole cannot be imported (nothing is written then).
    """
    from campaigns.models import ContactList

    if not dry_run:
        if contact_list is None:
            raise ValueError("a real import needs a contact list")
        if contact_list.owner_id != owner.pk:
            # Never reached from our forms (their choices are scoped); a guard for other callers.
            raise PermissionError("the list belongs to someone else")
        assert isinstance(contact_list, ContactList)
    chunk_size = chunk_size or settings.IMPORT_CHUNK_SIZE
    table = open_table(path, filename=filename, encoding=encoding)
    columns = map_columns(table.headers)
    result = ImportResult(dry_run=dry_run, file_description=table.description, columns=columns.describe())
    seen = {}  # address -> outcome of its first row (CREATED / UPDATED / SUPPRESSED)

    chunk = []
    for number, cells in table.rows():
        chunk.append((number, cells))
        if len(chunk) >= chunk_size:
            _process_chunk(chunk, columns=columns, owner=owner, contact_list=contact_list, dry_run=dry_run,
                           seen=seen, result=result, keep_outcomes=keep_outcomes)
            chunk = []
            if progress:
                progress(result.processed_rows)
    if chunk:
        _process_chunk(chunk, columns=columns, owner=owner, contact_list=contact_list, dry_run=dry_run,
                       seen=seen, result=result, keep_outcomes=keep_outcomes)
        if progress:
            progress(result.processed_rows)
    return result


def count_file_rows(*, path, filename="", encoding=""):
    """Data rows in the file; raises FileRefused, as the import would, if it cannot be imported."""
    table = open_table(path, filename=filename, encoding=encoding)
    map_columns(table.headers)
    return count_rows(table)


def _cell(cells, index):
    if index is None or index >= len(cells):
        return ""
    return str(cells[index]).strip(" \t\r\n\u00a0\ufeff")


def _process_chunk(chunk, *, columns, owner, contact_list, dry_run, seen, result, keep_outcomes):
    records = {}
    rejected = []
    row_outcomes = []
    for number, cells in chunk:
        result.processed_rows += 1
        if not any(str(c).strip() for c in cells):
            result.blank_rows += 1
            continue
        raw_address = _cell(cells, columns.address)
        address = normalize_address(raw_address)
        if columns.name is not None:
            name = _cell(cells, columns.name)
        else:
            name = " ".join(p for p in (_cell(cells, columns.first_name), _cell(cells, columns.last_name)) if p)
        problem = address_problem(address)
        if problem is None and len(name) > MAX_NAME:
            problem = f"name longer than {MAX_NAME} characters"
        attributes = {}
        for index, key in columns.attributes:
            value = _cell(cells, index)
            if value:
                attributes[key] = value[:MAX_ATTRIBUTE_VALUE]
        outcome = RowOutcome(row=number, address=address or raw_address, outcome="", name=name)
        row_outcomes.append(outcome)
        if problem:
            outcome.outcome, outcome.reason = REJECTED, problem
            outcome.address = raw_address
            rejected.append({"row": number, "address": raw_address, "reason": problem})
            continue
        record = records.get(address)
        if record is None:
            record = records[address] = _Record(address=address, first_row=number, new_in_file=address not in seen)
        if name:
            record.name = name
        record.attributes.update(attributes)
        record.rows.append(outcome)

    existing = writers.existing_contacts(owner=owner, addresses=list(records))
    from campaigns.models import Contact

    to_create, to_update, on_list = [], [], []
    for address, record in records.items():
        contact = existing.get(address)
        if record.new_in_file:
            if contact is None:
                first = CREATED
            elif contact.status != Contact.Status.SUBSCRIBED:
                first = SUPPRESSED
            else:
                first = UPDATED
            seen[address] = first
        else:
            first = None  # its first row was in an earlier chunk
        earlier = seen[address]
        for i, outcome in enumerate(record.rows):
            if earlier == SUPPRESSED:
                outcome.outcome = SUPPRESSED
                outcome.reason = "unsubscribed, bounced or complained: kept as it is, not added to the list"
            elif i == 0 and first is not None:
                outcome.outcome = first
            else:
                outcome.outcome = MERGED
                outcome.reason = "same address as an earlier row"
        if dry_run or earlier == SUPPRESSED:
            continue
        if contact is None:
            to_create.append((address, record.name, record.attributes))
            continue
        name = record.name or contact.name
        attributes = {**contact.attributes, **record.attributes}
        if name != contact.name or attributes != contact.attributes:
            to_update.append((contact.pk, name, attributes))
        on_list.append(contact.pk)

    if not dry_run and (to_create or to_update or on_list):
        writers.write_chunk(owner=owner, contact_list=contact_list, to_create=to_create, to_update=to_update,
                            on_list=on_list, now=timezone.now())

    for outcome in row_outcomes:
        result.counts[outcome.outcome] += 1
        if len(result.outcomes) < keep_outcomes:
            result.outcomes.append(outcome)
    result.rejected.extend(rejected)

