"""Exports to CSV and XLSX, with every formula-like cell escaped.

Values are stored as written (an import keeps "=A2*2" as its text, from CSV and XLSX alike); they are
escaped here, where they leave as a spreadsheet:
- CSV: a cell that begins with =, +, -, @, a tab or a carriage return is prefixed with an apostrophe,
  so no spreadsheet ever runs it as a formula (OWASP "CSV injection"). A CSV has no cell types: the
  apostrophe is the only escape a spreadsheet honours.
- XLSX: every text cell is written typed as text (never a formula), and a formula-like one also carries
  Excel's quote prefix (the style Excel gives a cell typed with a leading apostrophe): shown as
  written, never run, and read back by an import without any apostrophe.
django-import-export's own IMPORT_EXPORT_ESCAPE_FORMULAE_ON_EXPORT (4.4) only drops a leading "=" and
lets +, -, @ through, so exports go through this module instead; its column definitions are the
resources in contacts/resources.py and campaigns/resources.py.
"""

import csv
import io

from django.http import HttpResponse
from django.utils.text import slugify

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
FORMATS = {
    "csv": ("text/csv; charset=utf-8", "csv"),
    "xlsx": ("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", "xlsx"),
}


def escape_cell(value):
    if value is None:
        return ""
    if isinstance(value, bool) or not isinstance(value, str):
        return value
    if value.startswith(FORMULA_PREFIXES):
        return "'" + value
    return value


def _text_cell(value):
    value = escape_cell(value)
    return value if isinstance(value, str) else str(value)


def render_csv(headers, rows):
    buffer = io.StringIO()
    # A byte-order mark, so Excel opens UTF-8 as UTF-8.
    buffer.write("\ufeff")
    writer = csv.writer(buffer)
    writer.writerow([_text_cell(h) for h in headers])
    for row in rows:
        writer.writerow([_text_cell(cell) for cell in row])
    return buffer.getvalue().encode("utf-8")


def render_xlsx(headers, rows, *, title="Export"):
    import openpyxl
    from openpyxl.cell import WriteOnlyCell

    workbook = openpyxl.Workbook(write_only=True)
    sheet = workbook.create_sheet(title=title[:31] or "Export")

    def text_cell(value):
        value = _xlsx_value(value)
        cell = WriteOnlyCell(sheet, value=value)
        if isinstance(value, str):
            # openpyxl types a string beginning with "=" as a formula: typed back as text, never run.
            cell.data_type = "s"
            cell.quotePrefix = value.startswith(FORMULA_PREFIXES)
        return cell

    sheet.append([text_cell(h) for h in headers])
    for row in rows:
        sheet.append([text_cell(cell) for cell in row])
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def _xlsx_value(value):
    if value is None:
        return ""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return value
    text = value if isinstance(value, str) else str(value)
    # openpyxl drops control characters Excel refuses; keep the rest of the text.
    from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE

    return ILLEGAL_CHARACTERS_RE.sub("", text)


def render(headers, rows, *, file_format, title="Export"):
    if file_format == "csv":
        return render_csv(headers, rows)
    if file_format == "xlsx":
        return render_xlsx(headers, rows, title=title)
    raise ValueError(f"unknown export format {file_format!r}")


def dataset_rows(dataset):
    return dataset.headers, (list(row) for row in dataset)


def download(*, headers, rows, file_format, name):
    content_type, extension = FORMATS[file_format]
    body = render(headers, rows, file_format=file_format, title=name)
    response = HttpResponse(body, content_type=content_type)
    response["Content-Disposition"] = f'attachment; filename="{slugify(name) or "export"}.{extension}"'
    return response
