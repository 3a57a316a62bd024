"""Import rules: owner isolation, suppression, encodings, separators, headers, limits, jobs, the command."""

import io
import json

import openpyxl
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command
from django.urls import reverse

from contacts.addresses import address_problem, normalize_address
from contacts.imports import jobs, service
from contacts.imports.columns import map_columns
from contacts.imports.reader import FileRefused
from contacts.models import Contact, ContactList, ImportJob
from tests.contacts.import_helpers import read_uploads
from tests.factories import ContactFactory, ContactListFactory

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def media_root(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def write(tmp_path, name, data):
    path = tmp_path / name
    path.write_bytes(data if isinstance(data, bytes) else data.encode("utf-8"))
    return path


def run_import(owner, path, contact_list, **kwargs):
    return service.import_file(
        owner=owner, path=path, contact_list=contact_list, dry_run=False, keep_outcomes=10_000, **kwargs
    )


# --- owners ------------------------------------------------------------------------------


def test_second_marketer_importing_first_ones_addresses_gets_own_contacts(
    tmp_path, marketer, other_marketer, marketer_client, other_client
):
    alice_list = ContactListFactory(owner=marketer, name="Alice list")
    alice_contact = ContactFactory(owner=marketer, email="shared@example.com", name="Alice's", attributes={"a": "1"})
    alice_list.contacts.add(alice_contact)
    mallory_list = ContactListFactory(owner=other_marketer, name="Mallory list")
    data = (
        f"email,name,id,owner,list\nSHARED@example.com,Mallory's,{alice_contact.pk},{marketer.pk},"
        f"{alice_list.pk}\nnew@example.com,New,,,\n"
    )
    upload = SimpleUploadedFile("x.csv", data.encode(), content_type="text/csv")
    response = other_client.post(
        reverse("admin:contacts_importjob_add"), {"file": upload, "contact_list": mallory_list.pk}
    )
    read_uploads()
    job = ImportJob.objects.get()
    assert response.status_code == 302 and job.owner == other_marketer
    assert job.preview["counts"]["created"] == 2  # alice's contact is not "existing" for mallory
    other_client.post(reverse("admin:contacts_importjob_preview", args=[job.pk]), {"confirm": "1"})

    alice_contact.refresh_from_db()
    assert (alice_contact.owner, alice_contact.name, alice_contact.attributes) == (marketer, "Alice's", {"a": "1"})
    assert list(alice_list.contacts.all()) == [alice_contact]
    mallorys = Contact.objects.get(owner=other_marketer, email="shared@example.com")
    assert mallorys.pk != alice_contact.pk and mallorys.name == "Mallory's"
    # id/owner/list columns are just attributes: they point at nothing.
    assert mallorys.attributes == {"id": str(alice_contact.pk), "owner": str(marketer.pk), "list": str(alice_list.pk)}
    assert set(mallory_list.contacts.values_list("email", flat=True)) == {"shared@example.com", "new@example.com"}
    assert Contact.objects.filter(owner=marketer).count() == 1


def test_cannot_import_into_another_owners_list(marketer, other_marketer, other_client):
    alice_list = ContactListFactory(owner=marketer, name="Alice list")
    upload = SimpleUploadedFile("x.csv", b"email\nx@example.com\n")
    response = other_client.post(
        reverse("admin:contacts_importjob_add"), {"file": upload, "contact_list": alice_list.pk}
    )
    assert response.status_code == 200
    assert "Select a valid choice" in response.content.decode()
    assert "Alice list" not in response.content.decode()
    assert not ImportJob.objects.exists()


def test_service_refuses_another_owners_list(tmp_path, marketer, other_marketer):
    path = write(tmp_path, "x.csv", "email\nx@example.com\n")
    with pytest.raises(PermissionError):
        run_import(other_marketer, path, ContactListFactory(owner=marketer))


@pytest.mark.parametrize("view", ["preview", "change", "status", "report"])
def test_another_owners_job_answers_404(view, marketer, marketer_client, other_client):
    ContactListFactory(owner=marketer)
    upload = SimpleUploadedFile("alice.csv", b"email\nalice@example.com\n")
    marketer_client.post(
        reverse("admin:contacts_importjob_add"), {"file": upload, "contact_list": ContactList.objects.get().pk}
    )
    read_uploads()
    job = ImportJob.objects.get()
    url = reverse(f"admin:contacts_importjob_{view}", args=[job.pk])
    assert other_client.get(url).status_code == 404
    assert other_client.post(url, {"confirm": "1"}).status_code == 404
    job.refresh_from_db()
    assert job.status == ImportJob.Status.PREVIEWED
    assert marketer_client.get(url).status_code in (200, 302)
    listing = other_client.get(reverse("admin:contacts_importjob_changelist")).content.decode()
    assert "alice.csv" not in listing


def test_import_cannot_resubscribe(tmp_path, marketer):
    target = ContactListFactory(owner=marketer)
    for status in ("unsubscribed", "bounced", "complained"):
        ContactFactory(owner=marketer, email=f"{status}@example.com", name="Old", status=status, attributes={})
    path = write(
        tmp_path,
        "x.csv",
        "Email,Name,Status\nUNSUBSCRIBED@example.com,New,subscribed\n"
        "bounced@example.com,New,subscribed\ncomplained@example.com,,\nbounced@example.com,Again,\n",
    )
    result = run_import(marketer, path, target)
    assert result.counts == {"created": 0, "updated": 0, "merged": 0, "suppressed": 4, "rejected": 0}
    for status in ("unsubscribed", "bounced", "complained"):
        contact = Contact.objects.get(owner=marketer, email=f"{status}@example.com")
        assert (contact.status, contact.name, contact.attributes) == (status, "Old", {})
    assert target.contacts.count() == 0


# --- files -------------------------------------------------------------------------------


def test_windows_1252_detected(tmp_path, marketer):
    path = write(tmp_path, "x.csv", "Email;Name;City\r\nrene@example.fr;René Müller;Besançon\r\n".encode("cp1252"))
    result = run_import(marketer, path, ContactListFactory(owner=marketer))
    assert result.file_description == "CSV, windows-1252, semicolon-separated"
    contact = Contact.objects.get()
    assert (contact.name, contact.attributes) == ("René Müller", {"City": "Besançon"})


def test_encoding_chosen_on_the_form_wins(tmp_path, marketer):
    path = write(tmp_path, "x.csv", "email,name\nx@example.com,Ærø\n".encode("iso-8859-1"))
    run_import(marketer, path, ContactListFactory(owner=marketer), encoding="iso-8859-1")
    assert Contact.objects.get().name == "Ærø"


def test_wrong_encoding_chosen_is_refused(tmp_path, marketer):
    path = write(tmp_path, "x.csv", "email,name\nx@example.com,Ærø\n".encode("cp1252"))
    with pytest.raises(FileRefused, match="not valid utf-8"):
        run_import(marketer, path, ContactListFactory(owner=marketer), encoding="utf-8")


def test_utf16_with_bom_and_tabs(tmp_path, marketer):
    path = write(tmp_path, "x.txt", "E-Mail\tFirst Name\tLast Name\nli@example.cn\tLei\tLi\n".encode("utf-16"))
    result = run_import(marketer, path, ContactListFactory(owner=marketer))
    assert "tab-separated" in result.file_description
    assert Contact.objects.get().name == "Lei Li"


@pytest.mark.parametrize("header", ["email", "E-mail", "Email Address", " EMAIL ", "email_address", "Work Email"])
def test_address_header_spellings(header):
    assert map_columns([header, "Other"]).address == 0


def test_name_from_first_and_last_and_the_rest_are_attributes():
    columns = map_columns(["First Name", "Surname", "Email", "Plan", ""])
    assert (columns.address, columns.first_name, columns.last_name) == (2, 0, 1)
    assert columns.attributes == [(3, "Plan"), (4, "Column 5")]


def test_file_without_address_column_is_refused_naming_its_columns(marketer, marketer_client):
    ContactListFactory(owner=marketer)
    upload = SimpleUploadedFile("x.csv", b"Name,Phone\nAsha,+91 98\n")
    response = marketer_client.post(
        reverse("admin:contacts_importjob_add"), {"file": upload, "contact_list": ContactList.objects.get().pk}
    )
    assert response.status_code == 302
    read_uploads()
    job = ImportJob.objects.get()
    assert job.status == ImportJob.Status.FAILED and not job.file
    page = marketer_client.get(response["Location"], follow=True).content.decode()
    assert "No address column found. Columns in the file: “Name”, “Phone”." in page.replace("&quot;", '"')
    assert "Nothing was imported" in page and not Contact.objects.exists()


def test_file_over_the_size_limit_is_refused(settings, marketer, marketer_client):
    settings.IMPORT_MAX_UPLOAD_BYTES = 100
    ContactListFactory(owner=marketer)
    upload = SimpleUploadedFile("x.csv", b"email\n" + b"a@example.com\n" * 20)
    response = marketer_client.post(
        reverse("admin:contacts_importjob_add"), {"file": upload, "contact_list": ContactList.objects.get().pk}
    )
    assert "the limit is 0 MB" in response.content.decode() or "limit is" in response.content.decode()
    assert not ImportJob.objects.exists()


def test_xlsx_formula_address_is_rejected_and_only_first_sheet_read(tmp_path, marketer):
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet.append(["Email", "Name", "Phone"])
    sheet.append(['=HYPERLINK("http://evil.example","x")', "Evil", "+91 98450"])
    sheet.append(["ok@example.com", "=CMD()", 9876543210])
    workbook.create_sheet("Other").append(["other@example.com"])
    path = tmp_path / "x.xlsx"
    workbook.save(path)
    result = run_import(marketer, path, ContactListFactory(owner=marketer))
    assert [(o.row, o.outcome) for o in result.outcomes] == [(2, "rejected"), (3, "created")]
    contact = Contact.objects.get()
    # A formula is stored as written, never with an apostrophe the person did not type.
    assert (contact.email, contact.name, contact.attributes) == ("ok@example.com", "=CMD()", {"Phone": "9876543210"})


def test_xls_and_other_types_refused(tmp_path, marketer):
    with pytest.raises(FileRefused, match=".xls"):
        run_import(marketer, write(tmp_path, "x.xls", b"\xd0\xcf\x11\xe0rest"), ContactListFactory(owner=marketer))
    with pytest.raises(FileRefused, match=".pdf"):
        run_import(marketer, write(tmp_path, "x.pdf", b"%PDF"), ContactListFactory(owner=marketer))


# --- addresses ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "address",
    ["zoë.müller@example.de", "李雷@example.cn", "o'brien@example.ie", "priya+news@example.in", "x@bücher.example"],
)
def test_international_addresses_accepted(address):
    assert address_problem(normalize_address(address)) is None


@pytest.mark.parametrize(
    "address,reason",
    [
        ("", "no address"),
        ("a@@b.com", "exactly one @"),
        ("a b@example.com", "not a valid"),
        ("x@localhost", "not a valid"),
        ("=1+1@example.com", "formula"),
        ("a…@example.com", "not a valid"),
    ],
)
def test_bad_addresses_rejected(address, reason):
    assert reason in address_problem(normalize_address(address))


def test_international_address_passes_the_contact_admin_form(marketer, marketer_client):
    response = marketer_client.post(
        reverse("admin:contacts_contact_add"),
        {"email": "Zoë.Müller@Example.de", "name": "Zoë", "attributes": "{}", "status": "subscribed"},
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    assert Contact.objects.get().email == "zoë.müller@example.de"


# --- chunks, background jobs, progress -----------------------------------------------------


def test_duplicates_across_chunks_are_merged(tmp_path, marketer):
    rows = "".join(f"u{i}@example.com,N{i}\n" for i in range(25)) + "U3@EXAMPLE.COM,Later\n"
    path = write(tmp_path, "x.csv", "email,name\n" + rows)
    target = ContactListFactory(owner=marketer)
    seen = []
    dry = service.import_file(owner=marketer, path=path, dry_run=True, chunk_size=7)
    result = run_import(marketer, path, target, chunk_size=7, progress=seen.append)
    assert dry.counts == result.counts == {"created": 25, "updated": 0, "merged": 1, "suppressed": 0, "rejected": 0}
    assert seen == [7, 14, 21, 26]
    assert Contact.objects.get(email="u3@example.com").name == "Later"
    assert target.contacts.count() == 25


def test_every_first_outcome_holds_for_its_repeats_in_later_chunks(tmp_path, marketer):
    from privacy.services import erase_contact

    ContactFactory(owner=marketer, email="old@example.com", name="Old", attributes={"plan": "a"})
    ContactFactory(owner=marketer, email="gone@example.com", status=Contact.Status.UNSUBSCRIBED)
    erase_contact(contact=ContactFactory(owner=marketer, email="erased@example.com", status=Contact.Status.BOUNCED))
    first = ["new@example.com,New,x", "old@example.com,,y", "gone@example.com,Back,z", "erased@example.com,E,w"]
    filler = [f"f{i}@example.com,F{i}," for i in range(4)]
    repeats = ["NEW@example.com,New Again,", "Old@Example.com,Older,", "GONE@example.com,,", "Erased@example.com,,"]
    path = write(tmp_path, "x.csv", "email,name,plan\n" + "\n".join(first + filler + repeats) + "\n")
    target = ContactListFactory(owner=marketer)

    dry = service.import_file(owner=marketer, path=path, dry_run=True, chunk_size=4, keep_outcomes=20)
    result = run_import(marketer, path, target, chunk_size=4)

    expected = {"created": 5, "updated": 1, "merged": 2, "suppressed": 4, "rejected": 0}
    assert dry.counts == result.counts == expected
    later = {o.address: o.outcome for o in result.outcomes if o.row > 9}
    assert later == {
        "new@example.com": "merged",
        "old@example.com": "merged",
        "gone@example.com": "suppressed",
        "erased@example.com": "suppressed",
    }
    assert [o.outcome for o in dry.outcomes] == [o.outcome for o in result.outcomes]
    assert Contact.objects.get(email="new@example.com").name == "New Again"
    old = Contact.objects.get(email="old@example.com")
    assert (old.name, old.attributes) == ("Older", {"plan": "y"})
    assert Contact.objects.get(email="gone@example.com").status == Contact.Status.UNSUBSCRIBED
    assert not Contact.objects.filter(email="erased@example.com").exists()
    assert set(target.contacts.values_list("email", flat=True)) == {
        "new@example.com",
        "old@example.com",
        *(f"f{i}@example.com" for i in range(4)),
    }


def test_each_import_starts_with_no_address_seen(tmp_path, marketer):
    # The addresses read are kept per import (on PostgreSQL in a table of the session): a second
    # import on the same connection, even after one that failed half-way, merges nothing into the first's.
    path = write(tmp_path, "x.csv", "email\n" + "".join(f"s{i}@example.com\n" for i in range(6)))
    broken = write(tmp_path, "broken.csv", "email\n" + "".join(f"s{i}@example.com\n" for i in range(6)))
    target = ContactListFactory(owner=marketer)

    def fail_on_second_chunk(done):
        if done > 3:
            raise RuntimeError("stopped half-way")

    with pytest.raises(RuntimeError):
        service.import_file(owner=marketer, path=broken, dry_run=True, chunk_size=3, progress=fail_on_second_chunk)
    for _ in range(2):
        dry = service.import_file(owner=marketer, path=path, dry_run=True, chunk_size=3)
        assert dry.counts["created"] == 6 and dry.counts["merged"] == 0
    result = run_import(marketer, path, target, chunk_size=3)
    assert result.counts["created"] == 6
    again = run_import(marketer, path, target, chunk_size=3)
    assert again.counts["updated"] == 6 and again.counts["merged"] == 0


def test_large_import_goes_to_the_task_with_progress(settings, tmp_path, marketer, marketer_client):
    settings.IMPORT_SYNC_MAX_ROWS = 10
    settings.IMPORT_CHUNK_SIZE = 10
    target = ContactListFactory(owner=marketer)
    data = "email\n" + "".join(f"bulk{i}@example.com\n" for i in range(35))
    marketer_client.post(
        reverse("admin:contacts_importjob_add"),
        {"file": SimpleUploadedFile("big.csv", data.encode()), "contact_list": target.pk},
    )
    read_uploads()
    job = ImportJob.objects.get()
    queued = []
    assert jobs.confirm(job=job, enqueue=queued.append)
    assert job.status == ImportJob.Status.QUEUED and Contact.objects.count() == 0
    # on_commit ran at the end of confirm's transaction (pytest-django's test transaction aside)
    status_url = reverse("admin:contacts_importjob_status", args=[job.pk])
    assert json.loads(marketer_client.get(status_url).content)["status"] == "queued"
    page = marketer_client.get(reverse("admin:contacts_importjob_change", args=[job.pk])).content.decode()
    assert 'id="progress-bar"' in page and "js/import_progress.js" in page

    from contacts.tasks import import_contacts

    import_contacts(job.pk)
    payload = json.loads(marketer_client.get(status_url).content)
    assert payload["status"] == "done" and payload["percent"] == 100
    assert payload["counts"]["created"] == 35
    assert target.contacts.count() == 35
    import_contacts(job.pk)  # redelivered: nothing happens twice
    assert Contact.objects.count() == 35


def test_a_failed_import_says_why(tmp_path, marketer):
    target = ContactListFactory(owner=marketer)
    job = jobs.create_job(
        owner=marketer, uploaded_file=SimpleUploadedFile("x.csv", b"email\na@example.com\n"), contact_list=target
    )
    read_uploads()
    job.file.delete(save=False)
    jobs.confirm(job=job)
    assert job.status == ImportJob.Status.FAILED
    assert job.notes


# --- the command ---------------------------------------------------------------------------


def test_import_contacts_command(tmp_path, marketer, other_marketer):
    ContactFactory(owner=other_marketer, email="meera@example.com", name="Other")
    path = tmp_path / "c.csv"
    path.write_bytes(b"email;name;plan\nmeera@example.com;Meera;gold\nbad;X;\nMEERA@example.com;M2;silver\n")
    out, err = io.StringIO(), io.StringIO()
    report = tmp_path / "rejected.csv"
    call_command(
        "import_contacts",
        str(path),
        "--owner",
        "alice",
        "--list",
        "From CLI",
        "--report",
        str(report),
        stdout=out,
        stderr=err,
    )
    assert "3/3 rows" in err.getvalue()
    text = out.getvalue()
    assert "       1  created" in text and "       1  merged" in text and "       1  rejected" in text
    assert report.read_text().splitlines() == [
        "row,address,reason",
        "3,bad,not a valid address: it needs exactly one @",
    ]
    alice_list = ContactList.objects.get(owner=marketer, name="From CLI")
    assert list(alice_list.contacts.values_list("email", "name")) == [("meera@example.com", "M2")]
    assert Contact.objects.get(owner=other_marketer).name == "Other"


def test_the_command_imports_a_file_over_the_upload_limit(settings, tmp_path, marketer):
    """The limit keeps uploads off the web server; a staff member's file on disk is streamed whatever
    its size (a million contacts is 45 MB of CSV, over the 20 MB limit)."""
    settings.IMPORT_MAX_UPLOAD_BYTES = 100
    path = write(tmp_path, "big.csv", "email\n" + "".join(f"person{i}@example.com\n" for i in range(50)))
    assert path.stat().st_size > settings.IMPORT_MAX_UPLOAD_BYTES
    call_command(
        "import_contacts", str(path), "--owner", "alice", "--list", "Big", stdout=io.StringIO(), stderr=io.StringIO()
    )
    assert ContactList.objects.get(owner=marketer, name="Big").contacts.count() == 50


def test_import_contacts_command_errors(tmp_path, marketer):
    with pytest.raises(CommandError, match="No user"):
        call_command("import_contacts", str(write(tmp_path, "a.csv", "email\n")), "--owner", "nobody", "--list", "L")
    path = write(tmp_path, "c.csv", "name\nx\n")
    with pytest.raises(CommandError, match="No address column"):
        call_command(
            "import_contacts", str(path), "--owner", "alice", "--list", "L", stdout=io.StringIO(), stderr=io.StringIO()
        )
    assert not ContactList.objects.exists()


# --- the ImportJob admin is owner-scoped like every owned admin ---------------------------


@pytest.fixture
def two_jobs(marketer, other_marketer):
    made = {}
    for owner, name in ((marketer, "alice-file.csv"), (other_marketer, "mallory-file.csv")):
        job = jobs.create_job(
            owner=owner,
            uploaded_file=SimpleUploadedFile(name, b"email\nz@example.com\n"),
            contact_list=ContactListFactory(owner=owner),
        )
        read_uploads()
        jobs.confirm(job=job)
        made[owner.username] = job
    return made


def test_import_job_changelist_and_search_are_scoped(two_jobs, other_client, superuser_client):
    page = other_client.get(reverse("admin:contacts_importjob_changelist"))
    assert list(page.context["cl"].result_list) == [two_jobs["mallory"]]
    assert "alice" not in page.content.decode().lower()
    found = other_client.get(reverse("admin:contacts_importjob_changelist"), {"q": "alice-file"})
    assert list(found.context["cl"].result_list) == []
    everyone = superuser_client.get(reverse("admin:contacts_importjob_changelist"))
    assert set(everyone.context["cl"].result_list) == set(two_jobs.values())


@pytest.mark.parametrize("view", ["change", "delete", "history"])
def test_import_job_object_urls_answer_404_to_others(view, two_jobs, other_client, marketer_client):
    alice_job = two_jobs["alice"]
    url = reverse(f"admin:contacts_importjob_{view}", args=[alice_job.pk])
    assert other_client.get(url).status_code == 404
    assert other_client.post(url, {"post": "yes"}).status_code == 404
    assert ImportJob.objects.filter(pk=alice_job.pk).exists()
    assert marketer_client.get(url).status_code == 200


def test_import_job_delete_selected_with_others_ids_deletes_nothing(two_jobs, other_client):
    alice_job = two_jobs["alice"]
    data = {"action": "delete_selected", "_selected_action": [alice_job.pk], "index": "0", "post": "yes"}
    other_client.post(reverse("admin:contacts_importjob_changelist"), data)
    assert ImportJob.objects.filter(pk=alice_job.pk).exists()


# --- rejected rows: a sample and a count ----------------------------------------------------


def test_only_a_sample_of_rejected_rows_is_kept_and_all_are_counted(settings, marketer, marketer_client):
    settings.IMPORT_CHUNK_SIZE = 40
    target = ContactListFactory(owner=marketer)
    data = "email\n" + "".join(f"broken-{i}\n" for i in range(150)) + "fine@example.com\n"
    marketer_client.post(
        reverse("admin:contacts_importjob_add"),
        {"file": SimpleUploadedFile("bad.csv", data.encode()), "contact_list": target.pk},
    )
    read_uploads()
    job = ImportJob.objects.get()
    assert job.preview["counts"]["rejected"] == 150
    assert [r["row"] for r in job.rejected_rows] == list(range(2, 2 + service.REJECTED_SAMPLE))
    page = marketer_client.get(reverse("admin:contacts_importjob_preview", args=[job.pk])).content.decode()
    assert f"150 rows were rejected; the first {service.REJECTED_SAMPLE} are shown" in page

    jobs.confirm(job=job)
    job.refresh_from_db()
    assert job.status == ImportJob.Status.DONE and job.rejected_count == 150
    assert len(job.rejected_rows) == service.REJECTED_SAMPLE
    page = marketer_client.get(reverse("admin:contacts_importjob_change", args=[job.pk])).content.decode()
    assert f"150 rows were rejected; the first {service.REJECTED_SAMPLE} are shown" in page
    report = marketer_client.get(reverse("admin:contacts_importjob_report", args=[job.pk]))
    assert len(report.content.decode().splitlines()) == 1 + service.REJECTED_SAMPLE


def test_the_command_report_still_holds_every_rejected_row(tmp_path, marketer):
    path = tmp_path / "bad.csv"
    path.write_text("email\n" + "".join(f"broken-{i}\n" for i in range(150)))
    report = tmp_path / "rejected.csv"
    call_command(
        "import_contacts",
        "--owner",
        marketer.username,
        "--list",
        "L",
        str(path),
        "--report",
        str(report),
        stdout=io.StringIO(),
    )
    assert len(report.read_text().splitlines()) == 151
