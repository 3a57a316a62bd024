"""Bytes to rows: CSV (encoding and delimiter detected) and XLSX (first sheet, cells as text).

Rows are streamed: nothing holds the whole file in memory. Row numbers are the
ones a spreadsheet shows, the header being row 1.
"""

import codecs
import csv
import datetime
import decimal
import zipfile
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings

ENCODING_CHOICES = [
    ("", "Detect automatically"),
    ("utf-8", "UTF-8"),
    ("windows-1252", "Windows-1252 (Western European, Excel on Windows)"),
    ("iso-8859-1", "ISO-8859-1 (Latin-1)"),
    ("iso-8859-15", "ISO-8859-15 (Latin-9)"),
    ("utf-16", "UTF-16"),
]
DELIMITERS = (",", ";", "\t", "|")
CSV_EXTENSIONS = {".csv", ".txt", ".tsv"}
XLSX_EXTENSIONS = {".xlsx", ".xlsm"}
_SNIFF_BYTES = 64 * 1024
_READ_BYTES = 1024 * 1024
# More columns than any contact file needs; a file declaring more is refused, and no row is read wider.
MAX_COLUMNS = 200
# XML compresses well, a zip bomb far better: a large member unpacking to more than this many times its
# packed size is refused. Small members cannot hold a bomb and are not judged.
XLSX_MAX_RATIO = 100
_XLSX_RATIO_FROM_BYTES = 1024 * 1024
XLSX_MAX_MEMBERS = 10_000

# A single CSV field may be long (a pasted note), never unbounded.
csv.field_size_limit(1024 * 1024)


class FileRefused(Exception):
    """The file cannot be imported at all; the message says why, for the marketer."""


@dataclass
class Table:
    """One file opened for reading: its headers and a fresh iterator of (row number, cells).

    `max_rows`: more data rows than this raise FileRefused when the reading reaches them (None: no limit).
    """

    path: Path
    file_format: str  # "csv" or "xlsx"
    headers: list
    encoding: str = ""
    delimiter: str = ""
    max_rows: int | None = None

    def rows(self):
        if self.file_format == "csv":
            rows = _csv_rows(self.path, self.encoding, self.delimiter, skip_header=True)
        else:
            # No cell right of the header is read: the import has no column for it.
            rows = _xlsx_rows(self.path, skip_header=True, width=max(len(self.headers), 1))
        yield from _bounded(rows, self.max_rows)

    @property
    def description(self):
        if self.file_format == "xlsx":
            return "Excel workbook (first sheet)"
        names = {",": "comma", ";": "semicolon", "\t": "tab", "|": "vertical bar"}
        encoding = {"utf-8-sig": "UTF-8 with byte-order mark", "utf-8": "UTF-8"}.get(self.encoding, self.encoding)
        return f"CSV, {encoding}, {names.get(self.delimiter, repr(self.delimiter))}-separated"


def open_table(path, *, filename="", encoding="", max_rows=None):
    """Open `path` (named `filename` by its uploader) and read its header row."""
    path = Path(path)
    file_format = detect_format(path, filename or path.name)
    if file_format == "xlsx":
        check_xlsx_archive(path)
        # One column more than allowed is read, to tell a file that has too many.
        headers = next((cells for _, cells in _xlsx_rows(path, skip_header=False, width=MAX_COLUMNS + 1)), None)
        if headers is None:
            raise FileRefused("The first sheet of this workbook is empty.")
        return Table(path=path, file_format="xlsx", headers=_header_cells(headers, trim=True), max_rows=max_rows)
    check_text(path, encoding=encoding)
    encoding = encoding or detect_encoding(path)
    _check_decodes(path, encoding)
    delimiter = detect_delimiter(path, encoding)
    headers = next((cells for _, cells in _csv_rows(path, encoding, delimiter, skip_header=False)), None)
    if headers is None:
        raise FileRefused("The file is empty.")
    return Table(
        path=path,
        file_format="csv",
        headers=_header_cells(headers, trim=False),
        encoding=encoding,
        delimiter=delimiter,
        max_rows=max_rows,
    )


def check_file(path, *, filename="", encoding=""):
    """What can be told of the file without reading its rows: its type, that a CSV is text, and for a
    workbook its parts' sizes."""
    path = Path(path)
    if detect_format(path, filename or path.name) == "xlsx":
        check_xlsx_archive(path)
    else:
        check_text(path, encoding=encoding)


def _header_cells(cells, *, trim):
    """The header row, refused if its last named column is beyond MAX_COLUMNS.

    `trim`: without its empty cells on the right (an XLSX header is read padded to MAX_COLUMNS + 1);
    else up to MAX_COLUMNS cells (a CSV column without a header is an attribute, "Column N").
    """
    width = len(cells)
    while width and not cells[width - 1].strip():
        width -= 1
    if width > MAX_COLUMNS:
        raise FileRefused(f"The file has more than {MAX_COLUMNS} columns: keep only the columns to import.")
    return cells[:width] if trim else cells[:MAX_COLUMNS]


def _bounded(rows, max_rows):
    if max_rows is None:
        yield from rows
        return
    last = max_rows + 1  # the header is row 1
    for number, cells in rows:
        if number > last:
            raise FileRefused(f"The file has more than {max_rows:,} rows: split it into smaller files.")
        yield number, cells


def check_xlsx_archive(path):
    """Refuse a workbook whose zip would unpack to too much, before any of it is unpacked.

    zipfile never gives more bytes of a member than its header declares (reading past them fails
    its check), so the declared sizes bound what openpyxl can unpack.
    """
    try:
        with zipfile.ZipFile(path) as archive:
            members = archive.infolist()
    except (zipfile.BadZipFile, OSError):
        raise FileRefused("This workbook cannot be read: it is not a valid .xlsx file.") from None
    if len(members) > XLSX_MAX_MEMBERS:
        raise FileRefused(f"This workbook holds more than {XLSX_MAX_MEMBERS:,} parts: it is not a contact sheet.")
    names = {member.filename for member in members}
    if "xl/workbook.xml" not in names:
        raise FileRefused(
            f"This is not an Excel workbook (it looks like {_zip_kind(names)}). Upload a CSV or an .xlsx."
        )
    limit = settings.IMPORT_XLSX_MAX_UNPACKED_BYTES
    unpacked = sum(member.file_size for member in members)
    if unpacked > limit:
        raise FileRefused(
            f"This workbook unpacks to {unpacked / 2**20:,.0f} MB; the limit is {limit / 2**20:,.0f} MB. "
            "Save it as CSV or split it into smaller files."
        )
    for member in members:
        if member.file_size > _XLSX_RATIO_FROM_BYTES and member.file_size > XLSX_MAX_RATIO * max(
            member.compress_size, 1
        ):
            raise FileRefused(
                "This workbook is compressed far more than a spreadsheet can be (a zip bomb?): it is not read."
            )


def _zip_kind(names):
    if "word/document.xml" in names:
        return "a Word document"
    if "ppt/presentation.xml" in names:
        return "a PowerPoint presentation"
    if "content.xml" in names:
        return "an OpenDocument file: save it as .xlsx or CSV"
    return "a ZIP archive"


def detect_format(path, filename):
    suffix = Path(filename).suffix.lower()
    with open(path, "rb") as fh:
        magic = fh.read(8)
    if suffix in XLSX_EXTENSIONS or magic.startswith(b"PK\x03\x04"):
        if not magic.startswith(b"PK\x03\x04"):
            raise FileRefused("This file is named .xlsx but is not an Excel workbook.")
        return "xlsx"
    if suffix == ".xls" or magic.startswith(b"\xd0\xcf\x11\xe0"):
        raise FileRefused("Old Excel files (.xls) are not supported: save the sheet as .xlsx or CSV.")
    if suffix and suffix not in CSV_EXTENSIONS:
        raise FileRefused(f"Files of type {suffix} are not supported: upload a CSV or an .xlsx workbook.")
    return "csv"


# The first bytes of the files people upload by mistake, most specific first.
BINARY_SIGNATURES = (
    (b"\x89PNG\r\n\x1a\n", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF87a", "a GIF image"),
    (b"GIF89a", "a GIF image"),
    (b"%PDF-", "a PDF document"),
    (b"PK\x03\x04", "a ZIP archive"),
    (b"\x1f\x8b", "a gzip archive"),
    (b"Rar!\x1a\x07", "a RAR archive"),
    (b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive"),
    (b"{\\rtf", "an RTF document"),
    (b"SQLite format 3\x00", "an SQLite database"),
    (b"\xd0\xcf\x11\xe0", "an old Office file (.xls or .doc)"),
    (b"\x7fELF", "a program"),
    (b"MZ", "a Windows program"),
)
_TEXT_SNIFF_BYTES = 8 * 1024
_UTF16_NAMES = {"utf-16", "utf16", "utf-16-le", "utf-16le", "utf-16-be", "utf-16be"}


def check_text(path, *, encoding=""):
    """Refuse a file offered as CSV that is not text: a known binary signature, or NUL bytes (which no
    text in an 8-bit encoding or UTF-8 holds). UTF-16 holds NULs: with its byte-order mark, or chosen on
    the form, it passes."""
    with open(path, "rb") as fh:
        head = fh.read(_TEXT_SNIFF_BYTES)
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)) or encoding.lower() in _UTF16_NAMES:
        return
    kind = next((name for magic, name in BINARY_SIGNATURES if head.startswith(magic)), None)
    if kind is None and b"\x00" in head:
        kind = "binary data (or UTF-16 text without a byte-order mark: then choose UTF-16 as its encoding)"
    if kind is not None:
        raise FileRefused(
            f"This is not a CSV text file (it looks like {kind}). Upload a CSV saved as text, or an .xlsx workbook."
        )


def detect_encoding(path):
    """UTF-8 (with or without BOM) or UTF-16 by its BOM; else Windows-1252 if UTF-8 does not fit."""
    with open(path, "rb") as fh:
        head = fh.read(4)
        if head.startswith(codecs.BOM_UTF8):
            return "utf-8-sig"
        if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
            return "utf-16"
        fh.seek(0)
        # The whole file, in chunks: a legacy character may sit on the last row.
        decoder = codecs.getincrementaldecoder("utf-8")()
        try:
            while chunk := fh.read(_READ_BYTES):
                decoder.decode(chunk)
            decoder.decode(b"", final=True)
        except UnicodeDecodeError:
            return "windows-1252"
    return "utf-8"


def _check_decodes(path, encoding):
    try:
        decoder = codecs.getincrementaldecoder(encoding)()
    except LookupError:
        raise FileRefused(f"Unknown encoding {encoding!r}.") from None
    offset = 0
    with open(path, "rb") as fh:
        try:
            while chunk := fh.read(_READ_BYTES):
                decoder.decode(chunk)
                offset += len(chunk)
            decoder.decode(b"", final=True)
        except UnicodeDecodeError as exc:
            raise FileRefused(
                f"The file is not valid {encoding} (byte {offset + exc.start + 1}): choose its encoding on the form."
            ) from None


def detect_delimiter(path, encoding):
    """The separator that splits the header line into the most columns (comma on a tie)."""
    with open(path, encoding=encoding, newline="") as fh:
        sample = fh.read(_SNIFF_BYTES)
    first_line = next((line for line in sample.splitlines() if line.strip()), "")
    counts = {d: _split_count(first_line, d) for d in DELIMITERS}
    best = max(DELIMITERS, key=lambda d: counts[d])
    return best if counts[best] > 1 else ","


def _split_count(line, delimiter):
    try:
        return len(next(csv.reader([line], delimiter=delimiter)))
    except (csv.Error, StopIteration):
        return 0


def _csv_rows(path, encoding, delimiter, *, skip_header):
    # utf-8-sig also reads files without a BOM, and drops a BOM the detector did not see.
    if encoding.replace("_", "-").lower() in ("utf-8", "utf8"):
        encoding = "utf-8-sig"
    with open(path, encoding=encoding, newline="") as fh:
        reader = csv.reader(fh, delimiter=delimiter)
        start = 1
        if skip_header:
            # Skipped once here rather than tested on every row.
            next(reader, None)
            start = 2
        yield from enumerate(reader, start=start)


def _xlsx_rows(path, *, skip_header, width):
    """The first sheet's rows, each at most `width` cells (callers check the archive first)."""
    # Opened here, not by name: openpyxl refuses a name that does not end in .xlsx, and a workbook
    # uploaded as .csv is read as the workbook its bytes say it is.
    with open(path, "rb") as fh:
        yield from _workbook_rows(fh, skip_header=skip_header, width=width)


def _workbook_rows(fh, *, skip_header, width):
    import openpyxl

    # openpyxl parses with defusedxml when it is installed (it is, requirements.txt): no entity expansion.
    try:
        # data_only=False: a formula cell gives its formula, never the value cached by
        # whatever program saved the file last (which may be anything).
        workbook = openpyxl.load_workbook(fh, read_only=True, data_only=False)
    except Exception as exc:  # openpyxl raises many kinds on a damaged file
        raise FileRefused(f"This workbook cannot be read ({exc.__class__.__name__}).") from None
    try:
        sheet = workbook.worksheets[0]
        # The sheet's declared size is whatever the file says (A1:XFD1048576 would pad every row to
        # 16,384 cells and add a million empty rows): forgotten, rows are as long as their cells.
        sheet.reset_dimensions()
        # Read-only sheets yield every row from the first, gaps as empty rows: numbers stay true.
        # max_col: no row is ever built wider, whatever column its last cell names.
        gap = None
        for number, row in enumerate(sheet.iter_rows(max_col=width), start=1):
            if number == 1 and skip_header:
                continue
            if row is gap or not row:
                # openpyxl gives one shared empty tuple for every missing row: nothing to convert.
                yield number, []
                continue
            cells = [xlsx_cell_text(cell) for cell in row]
            if not any(cells):
                gap = row
            yield number, cells
    except FileRefused:
        raise
    except Exception as exc:  # the sheet's XML is parsed as it is read: damaged, or entities (defusedxml)
        raise FileRefused(f"This workbook cannot be read ({exc.__class__.__name__}).") from None
    finally:
        workbook.close()


def xlsx_cell_text(cell):
    """A cell as the text a person sees, typed values kept sensible, formulas as their text."""
    value = cell.value
    if value is None:
        return ""
    if cell.data_type == "f":
        # Never evaluated, nor its cached value trusted: kept as written, like the same text in a CSV.
        # Formula-like values are escaped where they leave as a spreadsheet (contacts.exports).
        return str(getattr(value, "text", value))  # an ArrayFormula keeps its formula in .text
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, datetime.datetime):
        if value.time() == datetime.time(0, 0):
            return value.date().isoformat()
        return value.isoformat(sep=" ", timespec="seconds" if value.microsecond == 0 else "auto")
    if isinstance(value, (datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, datetime.timedelta):
        return str(value)
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 1e16:
            return str(int(value))
        return repr(value)
    if isinstance(value, (int, decimal.Decimal)):
        return str(value)
    return str(value)


def count_rows(table):
    """Data rows in the file (blank ones included): one quick pass, for progress bars."""
    return sum(1 for _ in table.rows())
