"""Exports: contacts and campaign results to CSV and XLSX, formula-like cells escaped, owner-scoped."""

import csv
import datetime
import io
import json
import os
import zoneinfo

import openpyxl
import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse
from django.utils import timezone

from campaigns.models import Email
from contacts.exports import escape_cell
from tests.factories import CampaignFactory, ContactFactory, ContactListFactory, EmailFactory

pytestmark = pytest.mark.django_db

HYPERLINK = '=HYPERLINK("http://evil.example","click")'


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def csv_rows(response):
    assert response["Content-Type"].startswith("text/csv")
    return list(csv.reader(io.StringIO(response.content.decode("utf-8-sig"))))


def xlsx_rows(response):
    assert response["Content-Type"].startswith("application/vnd.openxmlformats")
    workbook = openpyxl.load_workbook(io.BytesIO(response.content))
    sheet = workbook.worksheets[0]
    # data_type "f" would be a formula a spreadsheet runs; none may be.
    assert all(cell.data_type != "f" for row in sheet.iter_rows() for cell in row)
    return [[cell.value for cell in row] for row in sheet.iter_rows()]


APP_OF = {"contact": "contacts", "contactlist": "contacts", "campaign": "campaigns"}


def action(client, model, name, ids):
    return client.post(
        reverse(f"admin:{APP_OF[model]}_{model}_changelist"),
        {"action": name, "_selected_action": [str(i) for i in ids]},
    )


@pytest.mark.parametrize(
    "value,escaped",
    [
        (HYPERLINK, "'" + HYPERLINK),
        ("+1+2", "'+1+2"),
        ("-2", "'-2"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\tx", "'\tx"),
        ("\rx", "'\rx"),
        ("plain", "plain"),
        ("", ""),
        (None, ""),
        (42, 42),
    ],
)
def test_escape_cell(value, escaped):
    assert escape_cell(value) == escaped


@pytest.mark.parametrize("fmt", ["csv", "xlsx"])
def test_contact_export_escapes_formulas(fmt, marketer, marketer_client):
    contact = ContactFactory(
        owner=marketer, email="x@example.com", name=HYPERLINK, attributes={"Note": "+SUM(1,2)", "City": "Pune"}
    )
    ContactListFactory(owner=marketer, name="Mine", contacts=[contact])
    response = action(marketer_client, "contact", f"export_contacts_{fmt}", [contact.pk])
    rows = csv_rows(response) if fmt == "csv" else xlsx_rows(response)
    # Attribute columns follow the fixed ones (in the database's key order: jsonb sorts them).
    assert rows[0][:5] == ["Email", "Name", "Status", "Lists", "Created"]
    assert sorted(rows[0][5:]) == ["City", "Note"]
    # CSV: an apostrophe; XLSX: text cells, never formulas (xlsx_rows checks), holding the value as written.
    escape = "'" if fmt == "csv" else ""
    assert rows[1][:4] == ["x@example.com", escape + HYPERLINK, "subscribed", "Mine"]
    assert dict(zip(rows[0][5:], rows[1][5:])) == {"Note": escape + "+SUM(1,2)", "City": "Pune"}


def test_contact_export_shows_only_own_lists_and_contacts(marketer, other_marketer, marketer_client, other_client):
    mine = ContactFactory(owner=marketer, email="mine@example.com")
    theirs = ContactFactory(owner=other_marketer, email="theirs@example.com")
    ContactListFactory(owner=marketer, name="Alice secret list", contacts=[mine])
    # A superuser may have put mallory's contact into alice's list: its name must not leak to mallory.
    ContactListFactory(owner=marketer, name="Alice other list", contacts=[theirs])
    ContactListFactory(owner=other_marketer, name="Mallory list", contacts=[theirs])
    rows = csv_rows(action(other_client, "contact", "export_contacts_csv", [mine.pk, theirs.pk]))
    assert [r[0] for r in rows[1:]] == ["theirs@example.com"]
    assert rows[1][3] == "Mallory list"


def test_list_export(marketer, other_marketer, marketer_client):
    a, b = ContactFactory(owner=marketer, email="a@example.com"), ContactFactory(owner=marketer, email="b@example.com")
    own = ContactListFactory(owner=marketer, contacts=[a, b])
    other = ContactListFactory(owner=other_marketer, contacts=[ContactFactory(owner=other_marketer)])
    rows = csv_rows(action(marketer_client, "contactlist", "export_list_contacts_csv", [own.pk, other.pk]))
    assert [r[0] for r in rows[1:]] == ["a@example.com", "b@example.com"]


@pytest.fixture
def results(marketer):
    campaign = CampaignFactory(owner=marketer, name="Spring")
    sent_at = timezone.now()
    EmailFactory(
        campaign=campaign,
        to_email="ok@example.com",
        status=Email.Status.SENT,
        sent_at=sent_at,
        smtp_code=250,
        smtp_response="2.0.0 OK queued",
        first_opened_at=sent_at,
        open_count=2,
        click_count=1,
        first_clicked_at=sent_at,
        possible_duplicate=True,
        bounced_at=sent_at,
        bounce_kind="hard",
        bounce_status="5.1.1",
        bounce_text="550 5.1.1 user unknown",
    )
    EmailFactory(
        campaign=campaign,
        to_email="evil@example.com",
        to_name=HYPERLINK,
        status=Email.Status.FAILED,
        smtp_code=550,
        smtp_response="=5.1.1 user unknown",
        unsubscribed_at=sent_at,
    )
    return campaign


@pytest.mark.parametrize("fmt", ["csv", "xlsx"])
def test_campaign_results_export_escapes(fmt, results, marketer_client):
    response = action(marketer_client, "campaign", f"export_results_{fmt}", [results.pk])
    rows = csv_rows(response) if fmt == "csv" else xlsx_rows(response)
    assert rows[0] == [
        "campaign",
        "address",
        "name",
        "status",
        "attempts",
        "sent_at",
        "smtp_code",
        "smtp_response",
        "first_opened_at",
        "open_count",
        "first_clicked_at",
        "click_count",
        "unsubscribed_at",
        "possible_duplicate",
        "bounced_at",
        "bounce_kind",
        "bounce_status",
        "bounce_text",
        "complained_at",
    ]
    ok, evil = rows[1], rows[2]
    assert ok[1] == "ok@example.com" and ok[3] == "sent" and str(ok[6]) == "250" and ok[7] == "2.0.0 OK queued"
    assert ok[5] and ok[8] and str(ok[9]) == "2" and str(ok[11]) == "1"
    # CSV: an apostrophe, its only escape; XLSX: text cells (never formulas, checked by xlsx_rows), as written.
    escape = "'" if fmt == "csv" else ""
    assert evil[2] == escape + HYPERLINK
    assert evil[7] == escape + "=5.1.1 user unknown"
    assert evil[12]


def test_another_owners_campaign_results_cannot_be_exported(results, other_client):
    response = action(other_client, "campaign", "export_results_csv", [results.pk])
    # No such campaign among mallory's: the admin answers with its changelist, not a file.
    assert not response.get("Content-Disposition")


def test_campaign_report_command(results):
    out = io.StringIO()
    call_command("campaign_report", str(results.pk), stdout=out)
    rows = list(csv.reader(io.StringIO(out.getvalue())))
    assert rows[0][:3] == ["campaign", "address", "name"]
    assert {r[1] for r in rows[1:]} == {"ok@example.com", "evil@example.com"}
    assert next(r for r in rows if r[1] == "evil@example.com")[2] == "'" + HYPERLINK

    out = io.StringIO()
    call_command("campaign_report", str(results.pk), "--format", "json", stdout=out)
    data = json.loads(out.getvalue())
    assert [d["address"] for d in data] == ["ok@example.com", "evil@example.com"]
    assert data[1]["name"] == HYPERLINK  # JSON is data, not a spreadsheet: unescaped
    assert data[0]["smtp_code"] == 250
    assert (data[0]["possible_duplicate"], data[1]["possible_duplicate"]) == (True, False)
    # A bounce that a delivery report brought after the 250, beside the SMTP answer.
    assert (data[0]["bounce_kind"], data[0]["bounce_status"], data[0]["bounce_text"]) == (
        "hard",
        "5.1.1",
        "550 5.1.1 user unknown",
    )
    assert isinstance(data[0]["bounced_at"], str) and data[0]["complained_at"] is None
    assert (data[1]["bounced_at"], data[1]["bounce_kind"]) == (None, "")
    csv_ok = next(r for r in rows if r[1] == "ok@example.com")
    assert csv_ok[15:18] == ["hard", "5.1.1", "550 5.1.1 user unknown"]

    with pytest.raises(CommandError):
        call_command("campaign_report", "999999")


def test_campaign_report_json_has_numbers_as_numbers_and_null_for_what_is_missing(results):
    out = io.StringIO()
    call_command("campaign_report", str(results.pk), "--format", "json", stdout=out)
    ok, evil = json.loads(out.getvalue())
    assert list(ok) == [
        "campaign",
        "address",
        "name",
        "status",
        "attempts",
        "sent_at",
        "smtp_code",
        "smtp_response",
        "first_opened_at",
        "open_count",
        "first_clicked_at",
        "click_count",
        "unsubscribed_at",
        "possible_duplicate",
        "bounced_at",
        "bounce_kind",
        "bounce_status",
        "bounce_text",
        "complained_at",
    ]
    assert (ok["attempts"], ok["smtp_code"], ok["open_count"], ok["click_count"]) == (0, 250, 2, 1)
    assert isinstance(ok["sent_at"], str) and isinstance(ok["first_opened_at"], str) and ok["unsubscribed_at"] is None
    assert (evil["open_count"], evil["click_count"], evil["smtp_code"]) == (0, 0, 550)
    assert evil["sent_at"] is None and evil["first_opened_at"] is None and evil["first_clicked_at"] is None
    assert isinstance(evil["unsubscribed_at"], str)


def test_campaign_report_json_gives_null_for_a_missing_smtp_code(marketer):
    campaign = CampaignFactory(owner=marketer)
    EmailFactory(campaign=campaign, to_email="later@example.com", status=Email.Status.PENDING)
    out = io.StringIO()
    call_command("campaign_report", str(campaign.pk), "--format", "json", stdout=out)
    [row] = json.loads(out.getvalue())
    assert row["smtp_code"] is None and row["attempts"] == 0 and row["status"] == "pending"


def test_campaign_report_times_are_in_the_owners_zone_or_the_one_asked(marketer):
    marketer.timezone = "Asia/Kolkata"
    marketer.save(update_fields=["timezone"])
    campaign = CampaignFactory(owner=marketer)
    sent = datetime.datetime(2026, 3, 1, 12, 0, tzinfo=datetime.UTC)
    EmailFactory(campaign=campaign, to_email="a@example.com", status=Email.Status.SENT, sent_at=sent)

    def sent_at(*options):
        out = io.StringIO()
        call_command("campaign_report", str(campaign.pk), "--format", "json", *options, stdout=out)
        return json.loads(out.getvalue())[0]["sent_at"]

    # The zone the admin shows the owner, with its offset: the same instant in any zone.
    assert sent_at() == "2026-03-01T17:30:00+05:30"
    assert sent_at("--tz", "UTC") == "2026-03-01T12:00:00+00:00"
    assert sent_at("--tz", "America/New_York") == "2026-03-01T07:00:00-05:00"
    out = io.StringIO()
    call_command("campaign_report", str(campaign.pk), stdout=out)
    assert "2026-03-01T17:30:00+05:30" in out.getvalue()
    with pytest.raises(CommandError, match="Unknown time zone 'Mars/Base'"):
        call_command("campaign_report", str(campaign.pk), "--tz", "Mars/Base")


def test_campaign_report_stops_quietly_when_its_reader_goes(marketer):
    """`campaign_report ID | head -1`: head exits after its line; the report's next write meets a closed
    pipe, and the command ends without a traceback."""
    campaign = CampaignFactory(owner=marketer)
    for n in range(50):
        EmailFactory(campaign=campaign, to_email=f"r{n}@example.com")
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone
    with open(write_end, "w", buffering=1) as pipe:  # line-buffered: every row is written at once
        call_command("campaign_report", str(campaign.pk), stdout=pipe)
        # Whatever was still buffered goes nowhere, without an error as the file closes.


def test_campaign_report_gives_times_in_the_owners_zone_as_the_admin_export_does(results, marketer_client):
    results.owner.timezone = "Asia/Kolkata"
    results.owner.save(update_fields=["timezone"])
    sent_at = Email.objects.get(campaign=results, to_email="ok@example.com").sent_at

    out = io.StringIO()
    call_command("campaign_report", str(results.pk), "--format", "json", stdout=out)
    exported = action(marketer_client, "campaign", "export_results_csv", [results.pk]).content.decode("utf-8-sig")

    shown = json.loads(out.getvalue())[0]["sent_at"]
    assert shown == sent_at.astimezone(zoneinfo.ZoneInfo("Asia/Kolkata")).isoformat(timespec="seconds")
    assert shown.endswith("+05:30") and shown in exported
