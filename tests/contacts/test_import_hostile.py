"""Hostile files: workbooks that declare a huge sheet, hold a zip bomb or XML entities, and files over
the row or column caps. Each is refused with a reason, or read as small as it is; nothing is written.

Judged by outcome (rows and cells read, the message), never by time: the pytest-timeout marks only
stop a run of the code before the fix, which would read for many minutes.
"""

import io
import zipfile

import openpyxl
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from contacts.imports import jobs, service
from contacts.imports.reader import MAX_COLUMNS, FileRefused, open_table
from contacts.models import Contact, ImportJob
from tests.contacts.import_helpers import read_uploads

pytestmark = pytest.mark.django_db

SHEET = "xl/worksheets/sheet1.xml"


@pytest.fixture(autouse=True)
def media_root(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    return settings.MEDIA_ROOT


def workbook_bytes(rows):
    book = openpyxl.Workbook()
    for row in rows:
        book.active.append(row)
    data = io.BytesIO()
    book.save(data)
    return data.getvalue()


def rewrite_member(data, name, change, *, compression=zipfile.ZIP_DEFLATED):
    """The workbook `data` with its member `name` replaced by change(old bytes)."""
    source = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression) as target:
        for info in source.infolist():
            content = source.read(info.filename)
            target.writestr(info.filename, change(content) if info.filename == name else content)
    return out.getvalue()


def with_dimension(data, ref):
    def change(xml):
        start = xml.index(b'<dimension ref="') + len(b'<dimension ref="')
        end = xml.index(b'"', start)
        return xml[:start] + ref.encode() + xml[end:]

    return rewrite_member(data, SHEET, change)


def read_all(path, **kwargs):
    table = open_table(path, **kwargs)
    return table.headers, list(table.rows())


def zip_bomb():
    """A valid workbook whose sheet holds 30 MB of whitespace: about 30 KB packed."""
    padding = b" " * (30 << 20)
    return rewrite_member(small_sheet(), SHEET, lambda xml: xml.replace(b"<sheetData>", b"<sheetData>" + padding))


def small_sheet():
    return workbook_bytes([["Email", "Name"], ["ann@example.com", "Ann"], ["bob@example.com", "Bob"]])


@pytest.mark.timeout(120)
@pytest.mark.parametrize("dimension", ["A1:XFD3", "A1:B1048576", "A1:XFD1048576"])
def test_a_declared_huge_sheet_is_read_as_small_as_it_is(tmp_path, dimension):
    data = with_dimension(small_sheet(), dimension)
    assert len(data) < 10_000
    path = tmp_path / "huge.xlsx"
    path.write_bytes(data)

    headers, rows = read_all(path)

    assert headers == ["Email", "Name"]
    assert rows == [(2, ["ann@example.com", "Ann"]), (3, ["bob@example.com", "Bob"])]


def test_a_cell_in_the_last_column_does_not_widen_any_row(tmp_path):
    def far_cell(xml):
        return xml.replace(
            b"</row></sheetData>", b'<c r="XFD3" t="inlineStr"><is><t>far</t></is></c></row></sheetData>'
        )

    path = tmp_path / "far.xlsx"
    path.write_bytes(rewrite_member(small_sheet(), SHEET, far_cell))

    headers, rows = read_all(path)

    assert headers == ["Email", "Name"]
    assert [len(cells) for _, cells in rows] == [2, 2]


def test_rows_far_below_are_refused_past_the_row_cap(tmp_path):
    def far_row(xml):
        return xml.replace(
            b"</sheetData>",
            b'<row r="1048576"><c r="A1048576" t="inlineStr"><is><t>z@example.com</t></is></c></row></sheetData>',
        )

    path = tmp_path / "tall.xlsx"
    path.write_bytes(rewrite_member(small_sheet(), SHEET, far_row))

    with pytest.raises(FileRefused, match="more than 1,000 rows"):
        read_all(path, max_rows=1000)


@pytest.mark.parametrize("file_format", ["xlsx", "csv"])
def test_a_header_wider_than_the_column_cap_is_refused(tmp_path, file_format):
    header = ["Email"] + [f"c{i}" for i in range(MAX_COLUMNS)]
    path = tmp_path / f"wide.{file_format}"
    if file_format == "xlsx":
        path.write_bytes(workbook_bytes([header, ["ann@example.com"]]))
    else:
        path.write_text(",".join(header) + "\nann@example.com\n")

    with pytest.raises(FileRefused, match=f"more than {MAX_COLUMNS} columns"):
        open_table(path)


def test_a_zip_bomb_member_is_refused_before_it_is_unpacked(tmp_path):
    data = zip_bomb()
    assert len(data) < 200_000
    path = tmp_path / "bomb.xlsx"
    path.write_bytes(data)

    with pytest.raises(FileRefused, match="zip bomb"):
        open_table(path)


def test_a_workbook_unpacking_past_the_limit_is_refused(tmp_path, settings):
    settings.IMPORT_XLSX_MAX_UNPACKED_BYTES = 4096
    path = tmp_path / "big.xlsx"
    path.write_bytes(small_sheet())  # its theme alone unpacks to more than 4 KB

    with pytest.raises(FileRefused, match="unpacks to .* the limit is"):
        open_table(path)


def test_xml_entities_are_never_expanded(tmp_path):
    assert openpyxl.DEFUSEDXML is True  # openpyxl parses every part with defusedxml

    def entity(xml):
        xml = b'<?xml version="1.0"?><!DOCTYPE worksheet [<!ENTITY who "eve@example.com">]>' + xml
        return xml.replace(b"<t>bob@example.com</t>", b"<t>&who;</t>")

    path = tmp_path / "entity.xlsx"
    path.write_bytes(rewrite_member(small_sheet(), SHEET, entity))

    with pytest.raises(FileRefused, match="cannot be read"):
        read_all(path)


def test_a_file_that_is_not_a_zip_is_refused(tmp_path):
    path = tmp_path / "broken.xlsx"
    path.write_bytes(b"PK\x03\x04" + b"\x00" * 100)

    with pytest.raises(FileRefused, match="not a valid .xlsx"):
        open_table(path)


def test_an_upload_over_the_row_cap_is_refused_and_nothing_is_kept(settings, marketer, media_root):
    settings.IMPORT_MAX_ROWS = 3
    data = "email\n" + "".join(f"p{i}@example.com\n" for i in range(4))
    job = jobs.create_job(owner=marketer, uploaded_file=SimpleUploadedFile("four.csv", data.encode()))

    read_uploads()

    job.refresh_from_db()
    assert job.status == ImportJob.Status.FAILED and "more than 3 rows" in job.notes
    assert not Contact.objects.exists()
    assert not [p for p in media_root.rglob("*") if p.is_file()]


def test_a_zip_bomb_upload_is_refused_in_the_request_and_nothing_is_kept(marketer, marketer_client, media_root):
    data = zip_bomb()

    response = marketer_client.post(
        reverse("admin:contacts_importjob_add"), {"file": SimpleUploadedFile("bomb.xlsx", data), "new_list_name": "L"}
    )

    assert response.status_code == 200 and "zip bomb" in response.content.decode()
    assert not ImportJob.objects.exists()
    assert not [p for p in media_root.rglob("*") if p.is_file()]


def test_the_row_cap_counts_data_rows_not_the_header(tmp_path, marketer):
    path = tmp_path / "three.csv"
    path.write_text("email\n" + "".join(f"p{i}@example.com\n" for i in range(3)))

    result = service.import_file(owner=marketer, path=path, dry_run=True, max_rows=3)

    assert result.processed_rows == 3
