"""/api/v1/contacts/bulk: up to 10,000 contacts a request, written set-based as an import chunk is."""

from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from contacts.models import Contact, ContactList
from contacts.services import contacts as contact_status
from privacy.services import erase_contact


def test_a_bulk_request_creates_updates_and_lists(api, alice):
    listed = ContactList.objects.create(owner=alice, name="Shop customers")
    Contact.objects.create(owner=alice, email="old@example.org", name="Old", attributes={"City": "Pune"})
    Contact.objects.create(owner=alice, email="same@example.org", name="Same")
    rows = [{"email": f"new{n}@example.org", "attributes": {"Plan": "Free"}} for n in range(2000)]
    rows += [
        {"email": "OLD@example.org", "attributes": {"City": "Goa", "Plan": "Pro"}},
        {"email": "same@example.org"},
        {"email": "dup@example.org", "name": "First", "attributes": {"A": "1"}},
        {"email": "Dup@example.org", "name": "", "attributes": {"B": "2"}},
        {"email": "broken", "name": "Nobody"},
    ]
    response = api.post_json("/api/v1/contacts/bulk", {"contacts": rows, "list_ids": [listed.pk]})
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["created"], body["updated"], body["unchanged"], body["suppressed"]) == (2001, 1, 1, 0)
    assert body["rejected"] == [{"index": 2004, "email": "broken", "reason": body["rejected"][0]["reason"]}]
    assert "valid email address" in body["rejected"][0]["reason"]

    old = Contact.objects.get(owner=alice, email="old@example.org")
    assert (old.name, old.attributes) == ("Old", {"City": "Goa", "Plan": "Pro"})
    dup = Contact.objects.get(owner=alice, email="dup@example.org")
    assert (dup.name, dup.attributes) == ("First", {"A": "1", "B": "2"})
    assert Contact.objects.get(owner=alice, email="new1999@example.org").attributes == {"Plan": "Free"}
    assert listed.contacts.count() == 2003  # the new, the updated and the unchanged
    assert Contact.objects.filter(owner=alice).count() == 2003


def test_suppressed_and_erased_addresses_are_left_alone(api, alice):
    gone = Contact.objects.create(owner=alice, email="gone@example.org")
    unsubscribed = Contact.objects.create(owner=alice, email="unsub@example.org", name="Unsub")
    now = timezone.now()
    contact_status.suppress(contact_ids=[gone.pk], status=Contact.Status.BOUNCED, now=now)
    contact_status.suppress(contact_ids=[unsubscribed.pk], status=Contact.Status.UNSUBSCRIBED, now=now)
    erase_contact(contact=gone)
    rows = [{"email": "gone@example.org"}, {"email": "unsub@example.org", "name": "Changed"}]
    body = api.post_json("/api/v1/contacts/bulk", {"contacts": rows}).json()
    assert (body["created"], body["updated"], body["suppressed"]) == (0, 0, 2)
    assert not Contact.objects.filter(email="gone@example.org").exists()
    unsubscribed.refresh_from_db()
    assert (unsubscribed.name, unsubscribed.status) == ("Unsub", "unsubscribed")


def test_limits_and_another_marketers_list(api, bob):
    too_many = [{"email": f"c{n}@example.org"} for n in range(10_001)]
    assert api.post_json("/api/v1/contacts/bulk", {"contacts": too_many}).status_code == 422
    assert api.post_json("/api/v1/contacts/bulk", {"contacts": []}).status_code == 422
    bobs = ContactList.objects.create(owner=bob, name="Bob's")
    refused = api.post_json("/api/v1/contacts/bulk", {"contacts": [{"email": "a@example.org"}], "list_ids": [bobs.pk]})
    assert refused.status_code == 422
    assert not Contact.objects.exists()


def test_a_body_over_the_limit_is_a_413(api, settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    rows = [{"email": f"c{n}@example.org"} for n in range(100)]
    response = api.post_json("/api/v1/contacts/bulk", {"contacts": rows})
    assert response.status_code == 413
    assert response["Content-Type"] == "application/problem+json"
    assert not Contact.objects.exists()


def test_another_marketers_contacts_are_never_touched(api, bob):
    theirs = Contact.objects.create(owner=bob, email="shared@example.org", name="Bob's")
    body = api.post_json(
        "/api/v1/contacts/bulk", {"contacts": [{"email": "shared@example.org", "name": "Mine"}]}
    ).json()
    assert body["created"] == 1
    theirs.refresh_from_db()
    assert theirs.name == "Bob's"


def test_a_bulk_request_commits_durably_before_it_answers(api):
    # An import turns synchronous_commit off for its chunks (its status update flushes them later); the API
    # answers as soon as the chunk commits, so its commit must wait for the WAL flush.
    with CaptureQueriesContext(connection) as queries:
        response = api.post_json("/api/v1/contacts/bulk", {"contacts": [{"email": "a@example.org"}]})
    assert response.status_code == 200 and response.json()["created"] == 1
    assert not [q["sql"] for q in queries.captured_queries if "synchronous_commit" in q["sql"]]
