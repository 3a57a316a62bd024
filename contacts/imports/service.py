"""The contact import: one code path for the dry run (preview) and the real run.

Rows are read in chunks. Per chunk: one query finds which of the chunk's addresses earlier
chunks had (writers.seen_addresses), one finds the owner's existing contacts among them, one
INSERT creates the new ones, one bulk UPDATE merges into the existing ones, one INSERT puts
them all on the list. Every query is filtered by the importing owner: a file can name any
address or id it likes, it only ever reaches that owner's contacts and lists.

What becomes of a row (its `outcome`):
- created: a new contact, subscribed, put on the list;
- updated: the owner had this address already (any case): non-empty cells
  overwrite name and attributes, empty cells erase nothing, status is kept;
- merged: the address appeared earlier in the file (any case); merged into that row;
- suppressed: the owner's contact is unsubscribed, bounced or complained: the
  contact is left exactly as it is and kept off the list (never resubscribed);
  or the owner erased the contact at its request while it was suppressed (its
  address's hash is a SuppressedHash): the row is skipped, nothing is created;
- rejected: no usable address; reported with the row number and the reason.
Blank rows are counted and otherwise ignored.
"""

import logging
import sys
from dataclasses import dataclass, field

from django.conf import settings
from django.utils import timezone

from contacts.addresses import address_problem, normalize_address
from contacts.imports import writers
from contacts.imports.columns import map_columns
from contacts.imports.reader import FileRefused, count_rows, open_table
from contacts.models import Contact, ContactList
from contacts.selectors import suppressed

log = logging.getLogger(__name__)

CREATED, UPDATED, MERGED, SUPPRESSED, REJECTED = "created", "updated", "merged", "suppressed", "rejected"
OUTCOMES = (CREATED, UPDATED, MERGED, SUPPRESSED, REJECTED)
# Not an outcome of its own: the first outcome of an erased address, counted and shown as suppressed.
ERASED = "erased"
SKIPPED = (SUPPRESSED, ERASED)
SKIP_REASONS = {
    SUPPRESSED: "unsubscribed, bounced or complained: kept as it is, not added to the list",
    ERASED: "erased at the contact's request: not added again",
}
MAX_NAME = 200
# Rejected rows kept with their reasons (the rest only counted): enough to see what is wrong with a file,
# and no unbounded copy of what a file held.
REJECTED_SAMPLE = 100
MAX_ATTRIBUTE_VALUE = 2000

__all__ = ["FileRefused", "ImportResult", "RowOutcome", "import_file"]


# The preview shows each value cut to this many characters: its rows are stored with the job.
PREVIEW_VALUE_CHARS = 120
# Later rows of an address named on its first row's line in the preview; the others are counted.
PREVIEW_LATER_ROWS = 5


@dataclass
class RowOutcome:
    """What becomes of one row. A created or updated address's first row carries, in a preview, the name and
    attributes as the import will save them, once every later row of the address merged into it."""

    row: int
    address: str
    outcome: str
    reason: str = ""
    name: str = ""
    attributes: dict = field(default_factory=dict)
    later_rows: list = field(default_factory=list)  # the rows merged into this one, in file order

    def as_dict(self):
        return {
            "row": self.row,
            "address": self.address,
            "outcome": self.outcome,
            "reason": self.reason or self._later_rows_reason(),
            "name": _preview_value(self.name),
            "attributes": {key: _preview_value(value) for key, value in self.attributes.items()},
            "later_rows": self.later_rows[:PREVIEW_LATER_ROWS],
            "later_count": len(self.later_rows),
        }

    def _later_rows_reason(self):
        if not self.later_rows:
            return ""
        shown = ", ".join(str(row) for row in self.later_rows[:PREVIEW_LATER_ROWS])
        more = len(self.later_rows) - PREVIEW_LATER_ROWS
        rows = (
            f"rows {shown} and {more:,} more" if more > 0 else f"row{'s' if len(self.later_rows) > 1 else ''} {shown}"
        )
        return f"then {rows} with the same address, merged in: shown as saved"


def _preview_value(value):
    return value if len(value) <= PREVIEW_VALUE_CHARS else value[: PREVIEW_VALUE_CHARS - 1] + "…"


@dataclass
class ImportResult:
    dry_run: bool
    file_description: str = ""
    columns: list = field(default_factory=list)  # [(header, meaning)]
    counts: dict = field(default_factory=lambda: dict.fromkeys(OUTCOMES, 0))
    blank_rows: int = 0
    processed_rows: int = 0
    rejected: list = field(default_factory=list)  # the first REJECTED_SAMPLE [{"row", "address", "reason"}]
    outcomes: list = field(default_factory=list)  # the first `keep_outcomes` RowOutcome
    attribute_keys: list = field(default_factory=list)  # the attributes the file's columns set, in column order

    @property
    def total_rows(self):
        return self.processed_rows


@dataclass(slots=True)
class _Record:
    """One address of a chunk: the rows naming it, merged in file order."""

    address: str
    first_row: int
    name: str
    attributes: dict
    row_count: int = 1
    new_in_file: bool = True  # False: an earlier chunk had it already
    first_outcome: str = ""  # of the address's first row in the file (CREATED / UPDATED / SUPPRESSED / ERASED)
    repeat_rows: list | None = None  # in a preview, the chunk's later rows of the address


@dataclass
class _Chunk:
    """Up to chunk_size rows, read and merged per address; written (or previewed) together."""

    records: dict = field(default_factory=dict)  # address -> _Record
    rejected: list = field(default_factory=list)  # the first REJECTED_SAMPLE [{"row", "address", "reason"}]
    rejected_count: int = 0
    # (RowOutcome, its _Record or None if rejected): only the rows the result keeps
    # (the preview's first ones); every other row is only counted, through its record.
    kept: list = field(default_factory=list)
    rows: int = 0
    blank_rows: int = 0


def import_file(
    *,
    owner,
    path,
    filename="",
    encoding="",
    contact_list=None,
    dry_run,
    progress=None,
    chunk_size=None,
    keep_outcomes=0,
    max_rows=None,
    keep_rejected=REJECTED_SAMPLE,
):
    """Import the contacts in `path` for `owner` into `contact_list` (None in a dry run only).

    `progress(processed_rows)` is called after each chunk. Raises FileRefused when
    the file as a whole cannot be imported (nothing is written then), or when it has more than
    `max_rows` data rows (a real import reaches that only after its dry run passed, on the same file).
    The result keeps the first `keep_rejected` rejected rows (None: all), and counts them all.
    """

    if not dry_run:
        if contact_list is None:
            raise ValueError("a real import needs a contact list")
        if contact_list.owner_id != owner.pk:
            # Never reached from our forms (their choices are scoped); a guard for other callers.
            raise PermissionError("the list belongs to someone else")
        assert isinstance(contact_list, ContactList)
    chunk_size = chunk_size or settings.IMPORT_CHUNK_SIZE
    if keep_rejected is None:
        keep_rejected = sys.maxsize
    table = open_table(path, filename=filename, encoding=encoding, max_rows=max_rows)
    columns = map_columns(table.headers)
    result = ImportResult(
        dry_run=dry_run,
        file_description=table.description,
        columns=columns.describe(),
        attribute_keys=[key for _, key in columns.attributes],
    )
    # In a preview: the kept first row of each created or updated address, to show as saved.
    kept_first_rows: dict[str, RowOutcome] = {}
    # Every address of the file with the outcome of its first row, so that a repeat in a later chunk
    # is merged into it: in the database (PostgreSQL), so memory does not grow with the file.
    with writers.seen_addresses() as seen:
        for chunk in _read_chunks(
            table.rows(),
            columns=columns,
            chunk_size=chunk_size,
            keep_outcomes=keep_outcomes,
            keep_rejected=keep_rejected,
        ):
            _process_chunk(
                chunk,
                owner=owner,
                contact_list=contact_list,
                dry_run=dry_run,
                seen=seen,
                result=result,
                keep_outcomes=keep_outcomes,
                keep_rejected=keep_rejected,
                kept_first_rows=kept_first_rows,
            )
            if progress:
                progress(result.processed_rows)
    return result


def count_file_rows(*, path, filename="", encoding=""):
    """Data rows in the file; raises FileRefused, as the import would, if it cannot be imported."""
    table = open_table(path, filename=filename, encoding=encoding)
    map_columns(table.headers)
    return count_rows(table)


_CELL_STRIP = " \t\r\n\u00a0\ufeff"


def _read_chunks(rows, *, columns, chunk_size, keep_outcomes, keep_rejected):
    """Read `rows` into _Chunk objects of `chunk_size` rows (blank ones included).

    This is the per-row hot loop of an import, so it is written for speed: column indexes in
    locals, no per-cell helper calls, and rows consumed as they are read
    (a chunk holds one record per address, not every row's cells: far less for the garbage
    collector to walk). A generator: a chunk is written before the next one is read.
    """
    address_index, name_index = columns.address, columns.name
    first_index, last_index = columns.first_name, columns.last_name
    attribute_columns = columns.attributes
    width = _row_width(columns)
    track_repeats = keep_outcomes > 0
    kept_so_far = 0  # RowOutcome objects kept in earlier chunks
    chunk = _Chunk()
    for number, cells in rows:
        chunk.rows += 1
        if len(cells) < width:
            cells = cells + [""] * (width - len(cells))
        # Both readers give text cells (CSV as read, XLSX through xlsx_cell_text).
        raw_address = cells[address_index].strip(_CELL_STRIP)
        # A non-blank address cell settles it; otherwise look at every cell (the common case skips this).
        if not raw_address.strip() and not any(c.strip() for c in cells):
            chunk.blank_rows += 1
        else:
            _read_row(
                chunk,
                number,
                cells,
                raw_address,
                name_index,
                first_index,
                last_index,
                attribute_columns,
                keep=len(chunk.kept) < keep_outcomes - kept_so_far,
                keep_rejected=keep_rejected,
                track_repeats=track_repeats,
            )
        if chunk.rows >= chunk_size:
            kept_so_far += len(chunk.kept)
            yield chunk
            chunk = _Chunk()
    if chunk.rows:
        yield chunk


def _row_width(columns):
    """Cells a row needs for every mapped column: shorter rows read as if padded with empty cells."""
    indexes = (
        columns.address,
        columns.name,
        columns.first_name,
        columns.last_name,
        *(index for index, _ in columns.attributes),
    )
    return 1 + max(index for index in indexes if index is not None)


def _read_row(
    chunk,
    number,
    cells,
    raw_address,
    name_index,
    first_index,
    last_index,
    attribute_columns,
    *,
    keep,
    keep_rejected,
    track_repeats,
):
    address = normalize_address(raw_address)
    if name_index is not None:
        name = cells[name_index].strip(_CELL_STRIP)
    else:
        name = _full_name(cells, first_index, last_index)
    problem = address_problem(address)
    if problem is None and len(name) > MAX_NAME:
        problem = f"name longer than {MAX_NAME} characters"
    if problem:
        _reject_row(chunk, number, raw_address, name, problem, keep=keep, keep_rejected=keep_rejected)
        return
    attributes = {
        key: value[:MAX_ATTRIBUTE_VALUE]
        for index, key in attribute_columns
        if (value := cells[index].strip(_CELL_STRIP))
    }
    record = chunk.records.get(address)
    if record is None:
        # The row's own attributes dict becomes the record's: no copy for the (usual) single row.
        record = chunk.records[address] = _Record(address=address, first_row=number, name=name, attributes=attributes)
    else:
        if name:
            record.name = name
        record.attributes.update(attributes)
        record.row_count += 1
        if track_repeats:
            if record.repeat_rows is None:
                record.repeat_rows = []
            record.repeat_rows.append(number)
    if keep:
        # A copy: the first row's dict is the record's, which later rows update.
        outcome = RowOutcome(row=number, address=address, outcome="", name=name, attributes=dict(attributes))
        chunk.kept.append((outcome, record))


def _full_name(cells, first_index, last_index):
    """The name from first and last name columns (either may be missing or empty)."""
    first = cells[first_index].strip(_CELL_STRIP) if first_index is not None else ""
    last = cells[last_index].strip(_CELL_STRIP) if last_index is not None else ""
    return f"{first} {last}" if first and last else first or last


def _reject_row(chunk, number, raw_address, name, problem, *, keep, keep_rejected):
    chunk.rejected_count += 1
    if len(chunk.rejected) < keep_rejected:
        chunk.rejected.append({"row": number, "address": raw_address, "reason": problem})
    if keep:
        outcome = RowOutcome(row=number, address=raw_address, outcome=REJECTED, reason=problem, name=name)
        chunk.kept.append((outcome, None))


def _process_chunk(chunk, *, owner, contact_list, dry_run, seen, result, keep_outcomes, keep_rejected, kept_first_rows):
    records = chunk.records
    _mark_read_before(records, seen.first_outcomes(list(records)))
    existing = writers.existing_contacts(owner=owner, addresses=list(records))
    erased = suppressed.erased_addresses(owner=owner, addresses=_addresses_new_to_owner(records, existing))
    seen.remember(_settle_first_outcomes(records, existing=existing, erased=erased))
    if not dry_run:
        to_create, to_update, on_list = _contact_writes(records, existing)
        if to_create or to_update or on_list:
            writers.write_chunk(
                owner=owner,
                contact_lists=[contact_list],
                to_create=to_create,
                to_update=to_update,
                on_list=on_list,
                now=timezone.now(),
            )
    for outcome, record in chunk.kept:
        if record is not None:  # None: rejected, its outcome set as it was read
            _settle_kept_outcome(outcome, record)
    if keep_outcomes:
        _show_kept_rows_as_saved(chunk, existing=existing, kept_first_rows=kept_first_rows)
    _add_to_result(result, chunk, keep_outcomes=keep_outcomes, keep_rejected=keep_rejected)


def _mark_read_before(records, first_outcomes):
    """The records whose address an earlier chunk had: not new in the file, and that address's first outcome."""
    for address, first_outcome in first_outcomes.items():
        records[address].new_in_file = False
        records[address].first_outcome = first_outcome


def _addresses_new_to_owner(records, existing):
    """The addresses this chunk brings to the file that are none of the owner's contacts."""
    return [address for address, record in records.items() if record.new_in_file and address not in existing]


def _settle_first_outcomes(records, *, existing, erased):
    """Sets the first outcome of each address this chunk brings to the file; returns them, {address: outcome}."""

    new_in_file = {}
    for address, record in records.items():
        if not record.new_in_file:
            continue  # its first row was in an earlier chunk
        contact = existing.get(address)
        if address in erased:
            first = ERASED
        elif contact is None:
            first = CREATED
        elif contact.status in Contact.SUPPRESSED_STATUSES:
            first = SUPPRESSED
        else:
            first = UPDATED
        record.first_outcome = new_in_file[address] = first
    return new_in_file


def _contact_writes(records, existing):
    """What a real run writes for the records: (to_create, to_update, on_list) as writers.write_chunk takes them.
    A suppressed or erased address writes nothing; an existing contact is updated only if a cell changes it."""
    to_create, to_update, on_list = [], [], []
    for address, record in records.items():
        if record.first_outcome in SKIPPED:
            continue
        contact = existing.get(address)
        if contact is None:
            to_create.append((address, record.name, record.attributes))
            continue
        name = record.name or contact.name
        attributes = {**contact.attributes, **record.attributes}
        if name != contact.name or attributes != contact.attributes:
            to_update.append((contact.pk, name, attributes))
        on_list.append(contact.pk)
    return to_create, to_update, on_list


def _chunk_counts(chunk):
    """Rows per outcome. An address's first row in the file counts as its first outcome and every later
    row as merged, except that every row of a suppressed or erased address counts as suppressed."""
    counts = dict.fromkeys(OUTCOMES, 0)
    counts[REJECTED] = chunk.rejected_count
    for record in chunk.records.values():
        if record.first_outcome in SKIPPED:
            counts[SUPPRESSED] += record.row_count
        elif record.new_in_file:
            counts[record.first_outcome] += 1
            counts[MERGED] += record.row_count - 1
        else:
            counts[MERGED] += record.row_count
    return counts


def _settle_kept_outcome(outcome, record):
    """A kept row's outcome, by the rule of _chunk_counts."""
    earlier = record.first_outcome
    if earlier in SKIPPED:
        outcome.outcome = SUPPRESSED
        outcome.reason = SKIP_REASONS[earlier]
    elif record.new_in_file and outcome.row == record.first_row:
        outcome.outcome = earlier
    else:
        outcome.outcome = MERGED
        outcome.reason = "same address as an earlier row: merged into it"


def _show_kept_rows_as_saved(chunk, *, existing, kept_first_rows):
    """In a preview: each kept first row of a created or updated address shows the name and attributes the
    import will save, the address's later rows merged in (non-empty cells win, in file order), and which
    rows those are; each kept later row names the row it merges into."""
    for outcome, record in chunk.kept:
        if record is None or record.first_outcome not in (CREATED, UPDATED):
            continue
        if record.new_in_file and outcome.row == record.first_row:
            contact = existing.get(record.address)
            outcome.name = record.name or (contact.name if contact else "")
            outcome.attributes = {**(contact.attributes if contact else {}), **record.attributes}
            outcome.later_rows = list(record.repeat_rows or [])
            kept_first_rows[record.address] = outcome
        elif (first := kept_first_rows.get(record.address)) is not None:
            outcome.reason = f"same address as row {first.row}: merged into it"
    for record in chunk.records.values():
        first = kept_first_rows.get(record.address)
        if first is None or record.new_in_file:
            continue  # not kept, or its first row is in this chunk (done above)
        first.later_rows.extend([record.first_row, *(record.repeat_rows or [])])
        if record.name:
            first.name = record.name
        first.attributes.update(record.attributes)


def _add_to_result(result, chunk, *, keep_outcomes, keep_rejected):
    for outcome, _record in chunk.kept:
        if len(result.outcomes) < keep_outcomes:
            result.outcomes.append(outcome)
    for outcome, count in _chunk_counts(chunk).items():
        result.counts[outcome] += count
    result.rejected.extend(chunk.rejected[: keep_rejected - len(result.rejected)])
    result.processed_rows += chunk.rows
    result.blank_rows += chunk.blank_rows
