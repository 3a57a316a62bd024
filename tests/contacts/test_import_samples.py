"""The sample files (copies of the maintainers' sample files), imported row by row through the admin:
upload, preview (nothing written), confirm (exactly what the preview showed)."""

from pathlib import Path

import pytest
from django.urls import reverse

from contacts.imports import service
from contacts.models import Contact, ContactList, ImportJob
from tests.contacts.import_helpers import read_uploads
from tests.factories import ContactFactory, ContactListFactory

SAMPLES = Path(__file__).parent / "samples"
pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def media_root(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    return settings.MEDIA_ROOT


def snapshot():
    """Every contact and list membership in the database, to show what changed and what did not."""
    contacts = {
        (c.owner.username, c.email): (c.name, c.attributes, c.status) for c in Contact.objects.select_related("owner")
    }
    memberships = {
        (cl.owner.username, cl.name): sorted(c.email for c in cl.contacts.all())
        for cl in ContactList.objects.select_related("owner")
    }
    return contacts, memberships


def upload(client, name, **fields):
    """Upload through the admin, then read the file as the preview task does in a worker."""
    with open(SAMPLES / name, "rb") as fh:
        response = client.post(reverse("admin:contacts_importjob_add"), {"file": fh, **fields})
    read_uploads()
    return response


def outcomes(job):
    return {r["row"]: (r["address"], r["outcome"], r["reason"]) for r in job.preview["rows"]}


# What becomes of every row of each sample, for an owner with no contacts yet.
SAMPLE_CSV_ROWS = {
    2: ("asha.rao@example.com", "created", ""),
    3: ("vikram.iyer@example.com", "created", "then row 4 with the same address, merged in: shown as saved"),
    4: ("vikram.iyer@example.com", "merged", "same address as row 3: merged into it"),
    5: ("not-an-email", "rejected", "not a valid address: it needs exactly one @"),
    6: ("", "rejected", "no address"),
    7: ("zoë.müller@example.de", "created", ""),
    8: ("李雷@example.cn", "created", ""),
    9: ("o'brien@example.ie", "created", ""),
    10: (
        '=HYPERLINK("http://evil.example","x")@example.com',
        "rejected",
        "not an address: it looks like a spreadsheet formula",
    ),
    11: ("priya+news@example.in", "created", ""),
}
SAMPLE_CSV_CONTACTS = {
    "asha.rao@example.com": ("Asha", {"Company": "Rao Textiles", "City": "Pune"}),
    # Row 4 merged into row 3: its non-empty cells win, as the later row.
    "vikram.iyer@example.com": ("Vikram (dup)", {"Company": "Iyer & Sons", "City": "Chennai"}),
    "zoë.müller@example.de": ("Zoë", {"Company": "Müller GmbH", "City": "Köln"}),
    "李雷@example.cn": ("李雷", {}),
    "o'brien@example.ie": ("Siobhán", {"Company": "O'Brien Ltd", "City": "Cork"}),
    "priya+news@example.in": ("Priya", {"City": "Bengaluru"}),
}
SEMICOLON_ROWS = {
    2: ("meera@example.com", "created", "then row 4 with the same address, merged in: shown as saved"),
    3: ("rahul@example.com", "created", ""),
    4: ("meera@example.com", "merged", "same address as row 2: merged into it"),
}
SEMICOLON_CONTACTS = {
    "meera@example.com": ("Meera again", {"plan": "silver"}),
    "rahul@example.com": ("Rahul", {}),
}
XLSX_ROWS = {
    2: ("kiran@example.com", "created", "then row 6 with the same address, merged in: shown as saved"),
    3: ("anil@example.com", "created", ""),
    # row 4 is blank: counted, not listed
    5: ("bad@@example.com", "rejected", "not a valid address: it needs exactly one @"),
    6: ("kiran@example.com", "merged", "same address as row 2: merged into it"),
    7: ("formula@example.com", "created", ""),
}
XLSX_CONTACTS = {
    # Whole numbers without ".0", dates as ISO dates; row 6's empty Joined erases nothing.
    "kiran@example.com": ("Kiran dup", {"Score": "3", "Joined": "2025-03-01"}),
    "anil@example.com": ("Anil", {"Score": "7.5", "Joined": "2024-12-31 23:59:00"}),
    # Formulas are never evaluated: their text is kept as written, as from a CSV (exports escape it).
    "formula@example.com": ("=1+1", {"Score": "=A2"}),
}

CASES = [
    (
        "contacts_sample.csv",
        SAMPLE_CSV_ROWS,
        SAMPLE_CSV_CONTACTS,
        1,
        "CSV, UTF-8 with byte-order mark, comma-separated",
    ),
    ("contacts_semicolon.csv", SEMICOLON_ROWS, SEMICOLON_CONTACTS, 0, "CSV, UTF-8, semicolon-separated"),
    ("contacts_sample.xlsx", XLSX_ROWS, XLSX_CONTACTS, 1, "Excel workbook (first sheet)"),
]


@pytest.mark.parametrize("name,rows,contacts,blank,description", CASES, ids=[c[0] for c in CASES])
def test_sample_preview_then_confirm(
    name, rows, contacts, blank, description, marketer, marketer_client, other_marketer
):
    target = ContactListFactory(owner=marketer, name="Newsletter")
    # Someone else's contacts at the same addresses, and in a list: never touched.
    for address in contacts:
        ContactFactory(owner=other_marketer, email=address, name="Mallory's", attributes={"x": "y"})
    before = snapshot()

    response = upload(marketer_client, name, contact_list=target.pk)
    job = ImportJob.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("admin:contacts_importjob_preview", args=[job.pk])
    assert snapshot() == before  # the preview writes no contact, no list
    assert job.file_description == description
    assert outcomes(job) == rows
    assert job.preview["blank_rows"] == blank
    expected_counts = {k: sum(1 for r in rows.values() if r[1] == k) for k in service.OUTCOMES}
    assert job.preview["counts"] == expected_counts
    assert [(r["row"], r["reason"]) for r in job.rejected_rows] == [
        (n, r[2]) for n, r in rows.items() if r[1] == "rejected"
    ]
    page = marketer_client.get(reverse("admin:contacts_importjob_preview", args=[job.pk]))
    assert page.status_code == 200
    assert "Confirm import" in page.content.decode()
    # Each address's first row shows the name and attributes the import saves, later rows merged in.
    previewed = {r["address"]: (r["name"], r["attributes"]) for r in job.preview["rows"] if r["outcome"] == "created"}
    assert previewed == contacts

    response = marketer_client.post(reverse("admin:contacts_importjob_preview", args=[job.pk]), {"confirm": "1"})
    assert response.status_code == 302
    job.refresh_from_db()
    assert job.status == ImportJob.Status.DONE
    assert (job.created_count, job.updated_count, job.merged_count, job.suppressed_count, job.rejected_count) == (
        expected_counts["created"],
        0,
        expected_counts["merged"],
        0,
        expected_counts["rejected"],
    )
    assert job.notes == ""  # exactly what the preview showed

    after_contacts, after_lists = snapshot()
    before_contacts, before_lists = before
    new = {key: value for key, value in after_contacts.items() if key not in before_contacts}
    assert new == {("alice", address): (n, attrs, "subscribed") for address, (n, attrs) in contacts.items()}
    # Nothing else changed: the other owner's contacts, lists and every other list.
    assert {k: v for k, v in after_contacts.items() if k in before_contacts} == before_contacts
    assert after_lists[("alice", "Newsletter")] == sorted(contacts)
    assert {k: v for k, v in after_lists.items() if k != ("alice", "Newsletter")} == {
        k: v for k, v in before_lists.items() if k != ("alice", "Newsletter")
    }


def test_sample_into_existing_contacts_updates_and_keeps_suppressed_out(marketer, marketer_client):
    target = ContactListFactory(owner=marketer, name="Newsletter")
    ContactFactory(owner=marketer, email="asha.rao@example.com", name="", attributes={"Tier": "A", "City": "Mumbai"})
    ContactFactory(
        owner=marketer, email="Priya+News@example.in", name="P", status=Contact.Status.UNSUBSCRIBED, attributes={}
    )
    ContactFactory(
        owner=marketer, email="zoë.müller@example.de", name="Z", status=Contact.Status.BOUNCED, attributes={}
    )
    upload(marketer_client, "contacts_sample.csv", contact_list=target.pk)
    job = ImportJob.objects.get()
    rows = outcomes(job)
    assert rows[2][1] == "updated"
    assert rows[7][1] == "suppressed" and rows[11][1] == "suppressed"
    assert job.preview["counts"] == {"created": 3, "updated": 1, "merged": 1, "suppressed": 2, "rejected": 3}
    page = marketer_client.get(reverse("admin:contacts_importjob_preview", args=[job.pk])).content.decode()
    assert 'id="count-suppressed">2<' in page

    marketer_client.post(reverse("admin:contacts_importjob_preview", args=[job.pk]), {"confirm": "1"})
    asha = Contact.objects.get(owner=marketer, email="asha.rao@example.com")
    assert asha.name == "Asha"
    assert asha.attributes == {"Tier": "A", "City": "Pune", "Company": "Rao Textiles"}
    priya = Contact.objects.get(owner=marketer, email="priya+news@example.in")
    assert (priya.status, priya.name) == (Contact.Status.UNSUBSCRIBED, "P")
    assert Contact.objects.get(owner=marketer, email="zoë.müller@example.de").status == Contact.Status.BOUNCED
    members = set(target.contacts.values_list("email", flat=True))
    assert "priya+news@example.in" not in members and "zoë.müller@example.de" not in members
    assert "asha.rao@example.com" in members


def test_new_list_is_created_only_on_confirm(marketer, marketer_client):
    upload(marketer_client, "contacts_semicolon.csv", new_list_name="Fresh leads")
    job = ImportJob.objects.get()
    assert not ContactList.objects.filter(name="Fresh leads").exists()
    marketer_client.post(reverse("admin:contacts_importjob_preview", args=[job.pk]), {"confirm": "1"})
    fresh = ContactList.objects.get(owner=marketer, name="Fresh leads")
    assert sorted(fresh.contacts.values_list("email", flat=True)) == ["meera@example.com", "rahul@example.com"]


def test_cancel_writes_nothing_and_removes_the_file(marketer, marketer_client):
    target = ContactListFactory(owner=marketer)
    upload(marketer_client, "contacts_semicolon.csv", contact_list=target.pk)
    job = ImportJob.objects.get()
    path = Path(job.file.path)
    assert path.exists() and path.parent.parent.name == str(marketer.pk)
    marketer_client.post(reverse("admin:contacts_importjob_preview", args=[job.pk]), {"cancel": "1"})
    job.refresh_from_db()
    assert job.status == ImportJob.Status.CANCELLED
    assert not path.exists()
    assert Contact.objects.count() == 0


def test_confirming_twice_imports_once(marketer, marketer_client):
    target = ContactListFactory(owner=marketer)
    upload(marketer_client, "contacts_semicolon.csv", contact_list=target.pk)
    job = ImportJob.objects.get()
    url = reverse("admin:contacts_importjob_preview", args=[job.pk])
    marketer_client.post(url, {"confirm": "1"})
    Contact.objects.filter(email="rahul@example.com").update(name="Changed since")
    marketer_client.post(url, {"confirm": "1"})
    assert Contact.objects.get(email="rahul@example.com").name == "Changed since"


def test_rejected_report_downloads_with_row_numbers(marketer, marketer_client):
    target = ContactListFactory(owner=marketer)
    upload(marketer_client, "contacts_sample.csv", contact_list=target.pk)
    job = ImportJob.objects.get()
    response = marketer_client.get(reverse("admin:contacts_importjob_report", args=[job.pk]))
    assert response["Content-Type"].startswith("text/csv")
    lines = response.content.decode("utf-8-sig").splitlines()
    assert lines[0] == "row,address,reason"
    assert lines[1:] == [
        "5,not-an-email,not a valid address: it needs exactly one @",
        "6,,no address",
        # The report itself escapes the formula.
        '10,"\'=HYPERLINK(""http://evil.example"",""x"")@example.com",not an address: it looks like a spreadsheet formula',
    ]
