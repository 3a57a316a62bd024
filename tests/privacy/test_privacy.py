"""Privacy requests: export everything held about a contact; erase it with every campaign figure kept exact."""

import io
import json
from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from campaigns import ledger
from campaigns.models import Campaign, CampaignHourTally, CampaignTally, Email
from contacts.imports import service as imports
from contacts.models import Contact, ImportJob, SuppressedHash
from contacts.selectors import suppressed
from privacy import services as privacy
from tests.factories import CampaignFactory, ContactFactory, ContactListFactory, EmailFactory, EventFactory, LinkFactory
from tracking.models import Event

pytestmark = pytest.mark.django_db

S = Email.Status


@pytest.fixture
def media_root(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"


@pytest.fixture
def ann(marketer, other_marketer):
    """Alice's contact Ann with two campaigns' emails and their events, beside others that must not show."""
    ann = ContactFactory(owner=marketer, email="ann@example.org", name="=Ann", attributes={"City": "Pune"})
    ContactListFactory(owner=marketer, name="Customers", contacts=[ann])
    ContactListFactory(owner=marketer, name="Other list", contacts=[ContactFactory(owner=marketer)])
    sent_at = timezone.now() - timedelta(hours=3)
    spring = CampaignFactory(owner=marketer, name="Spring", status=Campaign.Status.COMPLETED)
    opened = EmailFactory(
        campaign=spring,
        contact=ann,
        status=S.SENT,
        sent_at=sent_at,
        smtp_code=250,
        smtp_response="250 2.0.0 OK: queued as <ann@example.org>",
        first_opened_at=timezone.now(),
        open_count=2,
        first_clicked_at=timezone.now(),
        click_count=1,
        bounced_at=timezone.now(),
        bounce_kind="soft",
        bounce_status="4.2.2",
        bounce_text="452 4.2.2 <ann@example.org>: Mailbox full",
    )
    link = LinkFactory(campaign=spring, url="https://example.com/offer")
    EventFactory(email=opened, kind=Event.Kind.OPEN, user_agent="Mozilla/5.0 (Ann's laptop)")
    EventFactory(email=opened, kind=Event.Kind.CLICK, link=link)
    summer = CampaignFactory(owner=marketer, name="Summer", status=Campaign.Status.COMPLETED)
    EmailFactory(
        campaign=summer,
        contact=ann,
        status=S.FAILED,
        smtp_code=550,
        smtp_response="550 5.2.2 ann@example.org mailbox full",
        failure_class=Email.FailureClass.REJECTED,
    )
    # Campaign neighbours and another owner's contact with the same address: never part of Ann's record.
    EventFactory(email=EmailFactory(campaign=spring, status=S.SENT, sent_at=sent_at), kind=Event.Kind.OPEN)
    EmailFactory(contact=ContactFactory(owner=other_marketer, email="ann@example.org"), status=S.SENT)
    return ann


# --- export -----------------------------------------------------------------------------------------


def test_the_json_export_holds_everything_about_the_contact(ann):
    record = json.loads(privacy.export_json(contact=ann))

    assert set(record) == {"contact", "consent", "attributes", "lists", "emails", "events"}
    assert record["contact"]["email"] == "ann@example.org" and record["contact"]["name"] == "=Ann"
    assert record["consent"] == {"status": "subscribed", "status_changed_at": None}
    assert record["attributes"] == {"City": "Pune"}
    assert record["lists"] == ["Customers"]
    assert [(e["campaign"], e["status"], e["smtp_code"]) for e in record["emails"]] == [
        ("Spring", "sent", 250),
        ("Summer", "failed", 550),
    ]
    spring = record["emails"][0]
    assert spring["smtp_response"] == "250 2.0.0 OK: queued as <ann@example.org>"
    assert (spring["bounce_kind"], spring["bounce_text"]) == ("soft", "452 4.2.2 <ann@example.org>: Mailbox full")
    assert (spring["open_count"], spring["click_count"]) == (2, 1) and spring["sent_at"] and spring["first_opened_at"]
    assert sorted((e["kind"], e["link"]) for e in record["events"]) == [
        ("click", "https://example.com/offer"),
        ("open", ""),
    ]
    assert {e["campaign"] for e in record["events"]} == {"Spring"}


def test_the_csv_export_has_one_row_per_value_with_formulas_escaped(ann):
    text = privacy.export_csv(contact=ann).decode("utf-8-sig")
    rows = [line.split(",", 3) for line in text.splitlines()]

    assert rows[0] == ["section", "item", "field", "value"]
    assert ["contact", "1", "name", "'=Ann"] in rows
    assert ["attribute", "1", "City", "Pune"] in rows
    assert ["list", "1", "name", "Customers"] in rows
    assert ["email", "2", "campaign", "Summer"] in rows and ["email", "2", "status", "failed"] in rows
    assert sum(1 for row in rows if row[0] == "event" and row[2] == "kind") == 2


def test_the_contacts_page_exports_its_data_as_json_and_csv(marketer_client, ann):
    page = marketer_client.get(reverse("admin:contacts_contact_change", args=[ann.pk])).content.decode()
    json_url = reverse("admin:contacts_contact_privacy_export", args=[ann.pk, "json"])
    csv_url = reverse("admin:contacts_contact_privacy_export", args=[ann.pk, "csv"])
    assert json_url in page and csv_url in page

    as_json, as_csv = marketer_client.get(json_url), marketer_client.get(csv_url)

    assert as_json["Content-Type"].startswith("application/json")
    assert json.loads(as_json.content)["contact"]["email"] == "ann@example.org"
    assert as_csv["Content-Type"].startswith("text/csv") and "attachment" in as_csv["Content-Disposition"]
    assert "ann@example.org" in as_csv.content.decode("utf-8-sig")
    as_xml = marketer_client.get(reverse("admin:contacts_contact_privacy_export", args=[ann.pk, "xml"]))
    assert as_xml.status_code == 404


def test_another_owners_contact_answers_404_to_export_and_erase(other_client, ann):
    for url in (
        reverse("admin:contacts_contact_privacy_export", args=[ann.pk, "json"]),
        reverse("admin:contacts_contact_privacy_erase", args=[ann.pk]),
    ):
        assert other_client.get(url).status_code == 404
        assert other_client.post(url).status_code == 404
    assert Contact.objects.filter(pk=ann.pk).exists()
    assert Event.objects.filter(email__contact=ann).count() == 2


# --- erase ------------------------------------------------------------------------------------------


def _tallies():
    counts = list(
        CampaignTally.objects.order_by("campaign_id", "status", "failure_class").values_list(
            "campaign_id", "status", "failure_class", "n", "opened", "machine_only", "clicked", "unsubscribed"
        )
    )
    hours = list(CampaignHourTally.objects.order_by("campaign_id", "hour").values())
    return counts, hours


def test_erasing_keeps_every_tally_equal_and_leaves_nothing_of_the_contact(ann, marketer):
    before = _tallies()
    ann_email_ids = list(Email.objects.filter(contact=ann).values_list("pk", flat=True))

    erasure = privacy.erase_contact(contact=ann)

    assert _tallies() == before
    assert (erasure.emails_anonymised, erasure.events_deleted, erasure.suppressed_as) == (2, 2, "")
    assert not Contact.objects.filter(owner=marketer, email="ann@example.org").exists()
    rows = Email.objects.filter(pk__in=ann_email_ids)
    assert sorted(rows.values_list("status", flat=True)) == [S.FAILED, S.SENT]
    for row in rows:
        assert row.to_email == f"erased-{row.pk}@invalid"
        assert (row.to_name, row.contact_id, row.smtp_response, row.bounce_text) == ("", None, "", "")
    assert rows.get(status=S.SENT).open_count == 2
    assert not Event.objects.filter(email_id__in=ann_email_ids).exists()
    assert Event.objects.count() == 1  # the neighbour's open stays
    # Another owner's contact with the same address is not touched.
    assert Contact.objects.filter(email="ann@example.org").count() == 1
    assert not SuppressedHash.objects.exists()


def test_erasing_cancels_the_contacts_unsent_emails(ann, marketer):
    running = CampaignFactory(owner=marketer, status=Campaign.Status.SENDING)
    pending = EmailFactory(campaign=running, contact=ann, status=S.PENDING)

    privacy.erase_contact(contact=ann)

    pending.refresh_from_db()
    assert pending.status == S.CANCELLED and pending.to_email == f"erased-{pending.pk}@invalid"


def test_erasing_removes_the_contacts_rows_from_import_previews(ann, marketer, other_marketer):
    def preview(*addresses):
        return {
            "counts": {"created": len(addresses)},
            "rows": [{"row": n, "address": a, "name": a.split("@")[0]} for n, a in enumerate(addresses, start=2)],
        }

    job = ImportJob.objects.create(
        owner=marketer,
        file="imports/x.csv",
        original_name="x.csv",
        preview=preview("ANN@example.org", "bob@example.org"),
    )
    others = ImportJob.objects.create(
        owner=other_marketer, file="imports/y.csv", original_name="y.csv", preview=preview("ann@example.org")
    )

    privacy.erase_contact(contact=ann)

    job.refresh_from_db()
    others.refresh_from_db()
    assert [row["address"] for row in job.preview["rows"]] == ["bob@example.org"]
    assert job.preview["counts"] == {"created": 2}
    assert [row["address"] for row in others.preview["rows"]] == ["ann@example.org"]


def test_erasing_a_suppressed_contact_keeps_only_a_keyed_hash_of_its_address(ann, marketer):
    Contact.objects.filter(pk=ann.pk).update(status=Contact.Status.UNSUBSCRIBED)
    ann.refresh_from_db()

    assert privacy.erase_contact(contact=ann).suppressed_as == Contact.Status.UNSUBSCRIBED

    entry = SuppressedHash.objects.get(owner=marketer)
    assert entry.reason == Contact.Status.UNSUBSCRIBED
    assert entry.address_hash == suppressed.address_hash(" ANN@example.org ") and "ann" not in entry.address_hash
    assert suppressed.erased_reason(owner=marketer, address="Ann@Example.org") == Contact.Status.UNSUBSCRIBED


def test_the_admin_asks_then_erases(marketer_client, ann):
    url = reverse("admin:contacts_contact_privacy_erase", args=[ann.pk])
    page = marketer_client.get(url).content.decode()
    assert "Erasing <strong>ann@example.org</strong>" in page and "its 2 email record(s)" in page
    assert Contact.objects.filter(pk=ann.pk).exists()

    response = marketer_client.post(url, follow=True)

    assert response.redirect_chain[-1][0] == reverse("admin:contacts_contact_changelist")
    assert "The contact was erased: 2 email record(s) anonymised" in response.content.decode()
    assert not Contact.objects.filter(pk=ann.pk).exists()


def _import(owner, tmp_path, text):
    path = tmp_path / "contacts.csv"
    path.write_text(text, encoding="utf-8")
    contact_list = ContactListFactory(owner=owner, name="Imported")
    result = imports.import_file(owner=owner, path=path, contact_list=contact_list, dry_run=False, keep_outcomes=100)
    return result, contact_list


def test_a_reimport_after_erasing_an_unsubscribed_contact_skips_it(ann, marketer, tmp_path, media_root):
    Contact.objects.filter(pk=ann.pk).update(status=Contact.Status.UNSUBSCRIBED)
    privacy.erase_contact(contact=Contact.objects.get(pk=ann.pk))

    result, contact_list = _import(
        marketer, tmp_path, "email,name\nANN@example.org,Ann\nann@example.org,Ann again\nnew@example.org,New\n"
    )

    assert result.counts[imports.SUPPRESSED] == 2 and result.counts[imports.CREATED] == 1
    skipped = [o for o in result.outcomes if o.address.lower() == "ann@example.org"]
    assert [o.outcome for o in skipped] == [imports.SUPPRESSED, imports.SUPPRESSED]
    assert all(o.reason == "erased at the contact's request: not added again" for o in skipped)
    assert not Contact.objects.filter(owner=marketer, email="ann@example.org").exists()
    assert list(contact_list.contacts.values_list("email", flat=True)) == ["new@example.org"]


def test_a_reimport_after_erasing_a_subscribed_contact_adds_it_again(ann, marketer, tmp_path, media_root):
    privacy.erase_contact(contact=ann)

    result, _ = _import(marketer, tmp_path, "email\nann@example.org\n")

    assert result.counts[imports.CREATED] == 1
    assert Contact.objects.get(owner=marketer, email="ann@example.org").status == Contact.Status.SUBSCRIBED


def test_an_erased_bounced_address_added_by_hand_starts_bounced_and_is_never_materialised(
    ann, marketer, marketer_client, other_marketer
):
    Contact.objects.filter(pk=ann.pk).update(status=Contact.Status.BOUNCED)
    privacy.erase_contact(contact=Contact.objects.get(pk=ann.pk))

    response = marketer_client.post(
        reverse("admin:contacts_contact_add"), {"email": "Ann@example.org", "name": "Ann", "attributes": "{}"}
    )

    assert response.status_code == 302, response.content.decode()[:2000]
    again = Contact.objects.get(owner=marketer, email="ann@example.org")
    assert again.status == Contact.Status.BOUNCED
    campaign = CampaignFactory(owner=marketer, lists=[ContactListFactory(owner=marketer, contacts=[again])])
    assert ledger.materialise(campaign_id=campaign.pk, now=timezone.now()) == 0
    # The hash is the owner's own: another owner's new contact with that address is subscribed.
    assert ContactFactory(owner=other_marketer, email="ann2@example.org").status == Contact.Status.SUBSCRIBED
    assert suppressed.erased_reason(owner=other_marketer, address="ann@example.org") is None


@pytest.mark.parametrize(
    "stored",
    [
        "ann@example.org",
        " ANN@Example.org\u00a0",
        "\ufeffAnn@example.org\t",
        "zoë.müller@example.de",
        "ZOE\u0308.MÜLLER@example.de",
        "李雷@example.cn",
        "ÅSA@EXAMPLE.SE",
    ],
)
def test_the_statements_hash_of_an_address_is_address_hash_under_every_key(stored, settings):
    settings.SECRET_KEY_FALLBACKS = ["an-older-key-rotated-out-an-older-key-rotated-out"]
    hashes, params = suppressed.address_hashes_sql("v.address")
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT ARRAY[{', '.join(hashes)}] FROM (VALUES (%s)) AS v(address)", [*params, stored])
        (in_sql,) = cursor.fetchone()
    in_python = [
        suppressed.address_hash(stored, secret=secret)
        for secret in (settings.SECRET_KEY, *settings.SECRET_KEY_FALLBACKS)
    ]
    assert in_sql == in_python


def test_a_start_leaves_out_an_erased_suppressed_address_written_into_the_table_by_hand(ann, marketer, other_marketer):
    Contact.objects.filter(pk=ann.pk).update(status=Contact.Status.UNSUBSCRIBED)
    privacy.erase_contact(contact=Contact.objects.get(pk=ann.pk))
    # Past every entry point (they would create it unsubscribed): subscribed, and not as normalised.
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO campaigns_contact (owner_id, email, name, attributes, status, created_at, updated_at) "
            "VALUES (%s, %s, '', '{}', %s, now(), now()) RETURNING id",
            [marketer.pk, " Ann@Example.org", Contact.Status.SUBSCRIBED],
        )
        (by_hand,) = cursor.fetchone()
    others = [ContactFactory(owner=marketer, email=f"other{i}@example.org") for i in range(3)]
    campaign = CampaignFactory(owner=marketer, lists=[ContactListFactory(owner=marketer, contacts=[by_hand, *others])])
    # Another owner's contact with that address (the fixture's) was never erased by them: it is sent to.
    theirs = Contact.objects.get(owner=other_marketer, email="ann@example.org")
    their_campaign = CampaignFactory(
        owner=other_marketer, lists=[ContactListFactory(owner=other_marketer, contacts=[theirs])]
    )

    assert ledger.materialise(campaign_id=campaign.pk, now=timezone.now()) == 3
    assert set(Email.objects.filter(campaign=campaign).values_list("contact_id", flat=True)) == {c.pk for c in others}
    assert ledger.materialise(campaign_id=their_campaign.pk, now=timezone.now()) == 1


def test_a_hash_made_under_a_rotated_key_still_leaves_the_address_out(ann, marketer, settings):
    Contact.objects.filter(pk=ann.pk).update(status=Contact.Status.BOUNCED)
    privacy.erase_contact(contact=Contact.objects.get(pk=ann.pk))
    settings.SECRET_KEY_FALLBACKS = [settings.SECRET_KEY]
    settings.SECRET_KEY = "a-newer-key-a-newer-key-a-newer-key-a-newer-key"
    contact = Contact.objects.bulk_create([Contact(owner=marketer, email="ann@example.org")])[0]
    campaign = CampaignFactory(owner=marketer, lists=[ContactListFactory(owner=marketer, contacts=[contact])])

    assert ledger.materialise(campaign_id=campaign.pk, now=timezone.now()) == 0


# --- the command -------------------------------------------------------------------------------------


def test_the_command_exports_and_erases(ann, marketer):
    out = io.StringIO()
    call_command("contact_privacy", "export", "ANN@example.org", "--owner", "alice", stdout=out)
    assert json.loads(out.getvalue())["lists"] == ["Customers"]

    out = io.StringIO()
    call_command("contact_privacy", "export", "ann@example.org", "--owner", "alice", "--format", "csv", stdout=out)
    assert out.getvalue().splitlines()[0] == "section,item,field,value"

    before = _tallies()
    out = io.StringIO()
    call_command("contact_privacy", "erase", "ann@example.org", "--owner", "alice", stdout=out)
    assert "The contact was erased" in out.getvalue()
    assert not Contact.objects.filter(owner=marketer, email="ann@example.org").exists()
    assert _tallies() == before


def test_the_command_says_what_it_cannot_find(ann, other_marketer):
    with pytest.raises(CommandError, match="No user named 'nobody'"):
        call_command("contact_privacy", "export", "ann@example.org", "--owner", "nobody")
    with pytest.raises(CommandError, match="alice has no contact 'someone@example.org'"):
        call_command("contact_privacy", "erase", "someone@example.org", "--owner", "alice")
    # Mallory's contact of that address is hers: erasing it leaves Alice's Ann alone.
    call_command("contact_privacy", "erase", "ann@example.org", "--owner", "mallory", stdout=io.StringIO())
    assert Contact.objects.filter(pk=ann.pk).exists()


def test_erasing_removes_the_address_from_every_rejected_row_sample(
    ann, marketer, other_marketer, tmp_path, media_root
):
    from django.core.files.uploadedfile import SimpleUploadedFile

    from contacts.imports import jobs
    from tests.contacts.import_helpers import read_uploads

    long_name = "x" * 300
    data = (
        "email,name\n"
        f"Ann <ANN@example.org>,Ann\n"
        f"ann@example.org,{long_name}\n"
        "ann@example.org; bob@example.org,Both\n"
        "not-an-address,Someone\n"
    )
    job = jobs.create_job(owner=marketer, uploaded_file=SimpleUploadedFile("ann.csv", data.encode()), new_list_name="L")
    theirs = ImportJob.objects.create(
        owner=other_marketer,
        original_name="y.csv",
        rejected_rows=[{"row": 2, "address": "ann@example.org,", "reason": "r"}],
    )
    read_uploads()
    job.refresh_from_db()
    assert job.preview["counts"]["rejected"] == 4 and len(job.rejected_rows) == 4

    privacy.erase_contact(contact=ann)

    job.refresh_from_db()
    assert job.rejected_rows == [{"row": 5, "address": "not-an-address", "reason": job.rejected_rows[0]["reason"]}]
    assert "ann@example.org" not in json.dumps([job.preview, job.rejected_rows]).lower()
    assert job.rejected_total == 4  # the count stays
    theirs.refresh_from_db()
    assert theirs.rejected_rows[0]["address"] == "ann@example.org,"  # another owner's: not this erasure's


def test_erasing_replaces_the_address_in_import_headers_and_refusal_notes(ann, marketer, tmp_path, media_root):
    from django.core.files.uploadedfile import SimpleUploadedFile

    from contacts.imports import jobs
    from tests.contacts.import_helpers import read_uploads

    # A file without its header row: its first row is read as the header.
    refused = jobs.create_job(
        owner=marketer, uploaded_file=SimpleUploadedFile("a.csv", b"ANN@example.org,Ann\n"), new_list_name="L"
    )
    headers = jobs.create_job(
        owner=marketer,
        new_list_name="L",
        uploaded_file=SimpleUploadedFile("b.csv", b"email,ann@example.org\nx@example.org,1\n"),
    )
    read_uploads()
    refused.refresh_from_db(), headers.refresh_from_db()
    assert "ANN@example.org" in refused.notes and "ann@example.org" in json.dumps(headers.preview["columns"])

    privacy.erase_contact(contact=ann)

    refused.refresh_from_db(), headers.refresh_from_db()
    assert refused.notes == (
        "No address column found. Columns in the file: “(erased)”, “Ann”. "
        "Name the column with the addresses Email, E-mail or Email Address."
    )
    assert headers.preview["columns"] == [["email", "address"], ["(erased)", "attribute “(erased)”"]]
    assert [row["address"] for row in headers.preview["rows"]] == ["x@example.org"]
    # The preview's attribute columns and each row's values under them.
    assert headers.preview["attribute_keys"] == ["(erased)"]
    assert headers.preview["rows"][0]["attributes"] == {"(erased)": "1"}
    assert "ann@example.org" not in json.dumps(headers.preview).lower()
