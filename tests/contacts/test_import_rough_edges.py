"""What a marketer meets at the edges of an import: a file with nothing to import, a file that is not
text, a preview left unconfirmed, a preview longer than a page, a later row of the same address, and
formulas, which are stored as written from CSV and XLSX alike and escaped only when exported."""

import io
import zipfile
from datetime import timedelta

import openpyxl
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from django.utils import timezone
from PIL import Image

from contacts.imports import jobs, service
from contacts.imports.reader import FileRefused
from contacts.models import Contact, ImportJob
from tests.contacts.import_helpers import read_uploads
from tests.factories import ContactFactory, ContactListFactory

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def media_root(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    return settings.MEDIA_ROOT


def post_upload(client, owner, name, data):
    target = ContactListFactory(owner=owner)
    return client.post(
        reverse("admin:contacts_importjob_add"), {"file": SimpleUploadedFile(name, data), "contact_list": target.pk}
    )


def png_bytes():
    buffer = io.BytesIO()
    Image.new("RGB", (4, 4), (200, 30, 30)).save(buffer, format="PNG")
    return buffer.getvalue()


def xlsx_bytes(rows):
    workbook = openpyxl.Workbook()
    for row in rows:
        workbook.active.append(row)
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def preview_url(job):
    return reverse("admin:contacts_importjob_preview", args=[job.pk])


# --- nothing to import ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [b"email,name,city\n", b"email,name,city\r\n\r\n,,\r\n", b"email,name\nnot-an-address,X\n"],
    ids=["header only", "blank rows only", "only rejected rows"],
)
def test_a_file_with_nothing_to_import_previews_so_and_cannot_be_confirmed(data, marketer, marketer_client):
    post_upload(marketer_client, marketer, "people.csv", data)
    read_uploads()
    job = ImportJob.objects.get()
    assert job.status == ImportJob.Status.PREVIEWED

    page = marketer_client.get(preview_url(job)).content.decode()
    assert 'id="nothing-to-import"' in page and "Nothing to import" in page
    assert 'value="Confirm import" disabled' in page

    # The server refuses too, whatever the page showed.
    response = marketer_client.post(preview_url(job), {"confirm": "1"}, follow=True)
    assert "Nothing to import" in response.content.decode()
    job.refresh_from_db()
    assert job.status == ImportJob.Status.PREVIEWED and not Contact.objects.exists()
    with pytest.raises(jobs.ImportRefused, match="Nothing to import"):
        jobs.confirm(job=job)
    # It can still be cancelled.
    marketer_client.post(preview_url(job), {"cancel": "1"})
    job.refresh_from_db()
    assert job.status == ImportJob.Status.CANCELLED and not job.file


def test_a_file_with_one_contact_can_be_confirmed(marketer, marketer_client):
    post_upload(marketer_client, marketer, "people.csv", b"email\nann@example.com\n")
    read_uploads()
    page = marketer_client.get(preview_url(ImportJob.objects.get())).content.decode()
    assert "Nothing to import" not in page and 'value="Confirm import">' in page


# --- files that are not text ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name,data,kind",
    [
        ("photo.csv", png_bytes(), "a PNG image"),
        ("scan.csv", b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj\n", "a PDF document"),
        ("dump.txt", b"email\x00\x01\x02name\x00ann@example.com", "binary data"),
    ],
    ids=["png", "pdf", "nul bytes"],
)
def test_a_binary_file_named_csv_is_refused_as_not_text_at_upload(name, data, kind, marketer, marketer_client):
    response = post_upload(marketer_client, marketer, name, data)
    page = response.content.decode()
    assert response.status_code == 200
    assert f"This is not a CSV text file (it looks like {kind}" in page
    assert "not valid windows-1252" not in page
    assert not ImportJob.objects.exists()


def test_a_binary_file_is_refused_by_the_reader_too(tmp_path, marketer):
    path = tmp_path / "photo.csv"
    path.write_bytes(png_bytes())
    with pytest.raises(FileRefused, match=r"not a CSV text file \(it looks like a PNG image\)"):
        service.import_file(owner=marketer, path=path, dry_run=True)


def test_a_utf16_file_with_its_byte_order_mark_is_text(tmp_path, marketer):
    path = tmp_path / "people.csv"
    path.write_bytes("email,name\nzoë@example.de,Zoë\n".encode("utf-16"))
    result = service.import_file(owner=marketer, path=path, dry_run=True)
    assert result.counts["created"] == 1


def test_an_xlsx_renamed_csv_is_read_as_the_workbook_it_is(marketer, marketer_client):
    post_upload(marketer_client, marketer, "people.csv", xlsx_bytes([["Email", "City"], ["ann@example.com", "Köln"]]))
    read_uploads()
    job = ImportJob.objects.get()
    assert (job.status, job.file_description) == (ImportJob.Status.PREVIEWED, "Excel workbook (first sheet)")


def test_a_zip_that_is_no_workbook_says_what_it_looks_like(marketer, marketer_client):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr("word/document.xml", "<document/>")
    response = post_upload(marketer_client, marketer, "letter.csv", buffer.getvalue())
    assert "This is not an Excel workbook (it looks like a Word document)" in response.content.decode()
    assert not ImportJob.objects.exists()


# --- a preview never confirmed expires ------------------------------------------------------------------


def test_a_preview_left_unconfirmed_expires_when_visited(settings, marketer, marketer_client):
    settings.IMPORT_UNCONFIRMED_FILE_HOURS = 24
    post_upload(marketer_client, marketer, "people.csv", b"email\nann@example.com\n")
    read_uploads()
    job = ImportJob.objects.get()
    ImportJob.objects.filter(pk=job.pk).update(created_at=timezone.now() - timedelta(hours=25))

    # No periodic cleanup ran: the visit itself expires it.
    response = marketer_client.get(preview_url(job), follow=True)
    page = response.content.decode()
    job.refresh_from_db()
    assert job.status == ImportJob.Status.EXPIRED and not job.file
    assert "Expired (not confirmed in time)" in page and "Not confirmed within 24 hours" in page
    assert "Confirm import" not in page
    assert 'id="nothing-imported"' in page and 'id="progress-bar"' not in page and "Report" not in page
    # A confirmation sent from a page left open imports nothing.
    marketer_client.post(preview_url(job), {"confirm": "1"})
    assert not Contact.objects.exists()
    listing = marketer_client.get(reverse("admin:contacts_importjob_changelist")).content.decode()
    assert "Expired (not confirmed in time)" in listing


def test_a_recent_preview_does_not_expire_when_visited(settings, marketer, marketer_client):
    settings.IMPORT_UNCONFIRMED_FILE_HOURS = 24
    post_upload(marketer_client, marketer, "people.csv", b"email\nann@example.com\n")
    read_uploads()
    job = ImportJob.objects.get()
    ImportJob.objects.filter(pk=job.pk).update(created_at=timezone.now() - timedelta(hours=23))
    assert "Confirm import" in marketer_client.get(preview_url(job)).content.decode()
    job.refresh_from_db()
    assert job.status == ImportJob.Status.PREVIEWED


# --- the preview: every kept row, its attributes as saved, the final outcome ------------------------------


def test_the_preview_pages_through_its_rows_with_the_attribute_columns(settings, marketer, marketer_client):
    settings.IMPORT_PREVIEW_ROWS = 250
    lines = ["Email,Name,City"] + [f"p{n}@example.com,Person {n},Town {n}" for n in range(2, 302)]
    lines[5] = "zoe@example.de,Zoë Müller,Köln"  # row 6
    post_upload(marketer_client, marketer, "people.csv", "\n".join(lines).encode("utf-8"))
    read_uploads()
    job = ImportJob.objects.get()
    assert len(job.preview["rows"]) == 250 and job.total_rows == 300
    assert job.preview["attribute_keys"] == ["City"]

    first = marketer_client.get(preview_url(job)).content.decode()
    assert "Rows 1–100 of 250 listed (the file's first 250 of 300; every row is counted above)" in first
    assert '<th class="attribute">City</th>' in first
    assert '<td>Zoë Müller</td><td class="attribute">Köln</td>' in first
    assert (
        'data-row="101"' in first
        and 'data-row="102"' not in first
        and "Page 1 of 3" in first
        and '?page=2" rel="next"' in first
    )

    third = marketer_client.get(preview_url(job) + "?page=3").content.decode()
    assert "Rows 201–250 of 250" in third and 'data-row="251"' in third and 'data-row="252"' not in third
    assert '<td class="attribute">Town 251</td>' in third
    # A page past the end shows the last; a nonsense page the first.
    assert 'data-row="251"' in marketer_client.get(preview_url(job) + "?page=99").content.decode()
    assert 'data-row="2"' in marketer_client.get(preview_url(job) + "?page=x").content.decode()


def test_a_later_row_of_the_same_address_shows_on_the_first_as_saved(settings, marketer, marketer_client):
    # Small chunks: the later rows of an address land in other chunks than its first row.
    settings.IMPORT_CHUNK_SIZE = 3
    ContactFactory(owner=marketer, email="old@example.com", name="Old", attributes={"Tier": "A", "City": "Pune"})
    rows = [
        "Email,Name,City,Plan",
        "ann@example.com,Ann,Lyon,",  # 2
        "old@example.com,,Mumbai,",  # 3
        "bob@example.com,Bob,,basic",  # 4
        "x@example.com,X,,",  # 5
        "ANN@example.com,Ann Marie,,gold",  # 6: a later chunk
        "ann@example.com,,Paris,",  # 7
        "old@example.com,Olga,,",  # 8
    ]
    post_upload(marketer_client, marketer, "people.csv", "\n".join(rows).encode())
    read_uploads()
    job = ImportJob.objects.get()
    shown = {r["row"]: r for r in job.preview["rows"]}
    assert shown[2]["outcome"] == "created"
    assert (shown[2]["name"], shown[2]["attributes"]) == ("Ann Marie", {"City": "Paris", "Plan": "gold"})
    assert shown[2]["reason"] == "then rows 6, 7 with the same address, merged in: shown as saved"
    assert shown[6]["outcome"] == "merged" and shown[6]["reason"] == "same address as row 2: merged into it"
    assert (shown[6]["name"], shown[6]["attributes"]) == ("Ann Marie", {"Plan": "gold"})  # its own cells
    # An existing contact: what it keeps, overlaid by every row of the file.
    assert shown[3]["outcome"] == "updated"
    assert (shown[3]["name"], shown[3]["attributes"]) == ("Olga", {"Tier": "A", "City": "Mumbai"})
    page = marketer_client.get(preview_url(job)).content.decode()
    assert '<td>Ann Marie</td><td class="attribute">Paris</td><td class="attribute">gold</td>' in page

    marketer_client.post(preview_url(job), {"confirm": "1"})
    saved = {c.email: (c.name, c.attributes) for c in Contact.objects.all()}
    # Exactly what the preview's first rows showed.
    for row in (2, 3, 4, 5):
        assert saved[shown[row]["address"]] == (shown[row]["name"], shown[row]["attributes"])


def test_the_preview_cuts_long_values_and_names_many_later_rows_by_count(tmp_path, marketer):
    path = tmp_path / "people.csv"
    path.write_text("Email,Note\n" + f"ann@example.com,{'n' * 300}\n" + "ann@example.com,\n" * 8)
    result = service.import_file(owner=marketer, path=path, dry_run=True, keep_outcomes=20)
    first = result.outcomes[0].as_dict()
    assert len(first["attributes"]["Note"]) == service.PREVIEW_VALUE_CHARS and first["attributes"]["Note"][-1] == "…"
    assert first["reason"] == "then rows 3, 4, 5, 6, 7 and 3 more with the same address, merged in: shown as saved"
    assert first["later_count"] == 8


# --- formulas: stored as written, from CSV and XLSX alike; escaped on export --------------------------------


def test_formulas_are_stored_as_written_from_csv_and_xlsx_alike(marketer, marketer_client):
    header = ["Email", "Name", "Score", "Note"]
    csv_data = b'Email,Name,Score,Note\ncsv@example.com,=1+1,=A2*2,"@SUM(1,2)"\n'
    post_upload(marketer_client, marketer, "people.csv", csv_data)
    post_upload(
        marketer_client,
        marketer,
        "people.xlsx",
        xlsx_bytes([header, ["xlsx@example.com", "=1+1", "=A2*2", "@SUM(1,2)"]]),
    )
    read_uploads()
    for job in ImportJob.objects.all():
        marketer_client.post(preview_url(job), {"confirm": "1"})
    saved = {c.email: (c.name, c.attributes) for c in Contact.objects.all()}
    written = ("=1+1", {"Score": "=A2*2", "Note": "@SUM(1,2)"})
    assert saved == {"csv@example.com": written, "xlsx@example.com": written}


def test_the_contact_export_escapes_the_formulas_an_import_kept(marketer, marketer_client):
    contact = ContactFactory(owner=marketer, email="f@example.com", name="=1+1", attributes={"Score": "+A2"})
    changelist = reverse("admin:contacts_contact_changelist")
    for file_format in ("csv", "xlsx"):
        response = marketer_client.post(
            changelist, {"action": f"export_contacts_{file_format}", "_selected_action": [contact.pk]}
        )
        assert response.status_code == 200, file_format
        if file_format == "csv":
            text = response.content.decode("utf-8-sig")
            assert "'=1+1" in text and "'+A2" in text
        else:
            # Typed text with Excel's quote prefix: shown as written, never run, no apostrophe in the value.
            sheet = openpyxl.load_workbook(io.BytesIO(response.content)).active
            cells = {cell.value: cell for row in sheet.iter_rows() for cell in row}
            for value in ("=1+1", "+A2"):
                assert (cells[value].data_type, cells[value].quotePrefix) == ("s", True)
            assert not any(cell.data_type == "f" for cell in cells.values())


def test_an_xlsx_export_imports_back_as_it_was(marketer, marketer_client):
    """Export, edit in a spreadsheet, import again: no apostrophe creeps into a name or an attribute."""
    contact = ContactFactory(owner=marketer, email="f@example.com", name="=1+1", attributes={"Score": "-5"})
    exported = marketer_client.post(
        reverse("admin:contacts_contact_changelist"),
        {"action": "export_contacts_xlsx", "_selected_action": [contact.pk]},
    ).content
    Contact.objects.all().delete()
    post_upload(marketer_client, marketer, "export.xlsx", exported)
    read_uploads()
    marketer_client.post(preview_url(ImportJob.objects.get()), {"confirm": "1"})
    again = Contact.objects.get(email="f@example.com")
    assert (again.name, again.attributes["Score"]) == ("=1+1", "-5")
