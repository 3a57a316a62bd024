"""/api/v1/contacts: made, upserted, changed, read in cursor pages, deleted; every error a problem."""

import pytest
from django.utils import timezone

from contacts.models import Contact, ContactList
from contacts.services import contacts as contact_status
from privacy.services import erase_contact


def test_create_then_get(api, alice):
    listed = ContactList.objects.create(owner=alice, name="Newsletter")
    response = api.post_json(
        "/api/v1/contacts",
        {"email": "  Ann@Example.ORG ", "name": "Ann", "attributes": {"City": "Pune"}, "list_ids": [listed.pk]},
    )
    assert response.status_code == 201
    body = response.json()
    assert body["email"] == "ann@example.org"
    assert body["status"] == "subscribed"
    assert body["attributes"] == {"City": "Pune"}
    assert body["list_ids"] == [listed.pk]
    contact = Contact.objects.get(pk=body["id"])
    assert contact.owner == alice and list(contact.lists.all()) == [listed]
    assert api.get(f"/api/v1/contacts/{contact.pk}").json() == body


def test_an_address_taken_is_a_409_naming_the_contact(api, alice):
    first = api.post_json("/api/v1/contacts", {"email": "ann@example.org"}).json()
    response = api.post_json("/api/v1/contacts", {"email": "ANN@example.org", "name": "Other"})
    assert response.status_code == 409
    assert response["Content-Type"] == "application/problem+json"
    assert response.json()["existing"] == {"id": first["id"]}
    assert Contact.objects.get(pk=first["id"]).name == ""


@pytest.mark.parametrize(
    "payload, field",
    [
        ({"email": "not-an-address"}, "email"),
        ({"email": "=HYPERLINK(1)"}, "email"),
        ({"email": "a@example.org", "attributes": {"1bad": "x"}}, "attributes"),
        ({"email": "a@example.org", "attributes": {"email": "x"}}, "attributes"),
        ({"email": "a@example.org", "attributes": {"City": 5}}, "attributes"),
        ({"email": "a@example.org", "list_ids": [999999]}, "list_ids"),
        ({"name": "no address"}, "email"),
        ({"email": "a@example.org", "name": "x" * 201}, "name"),
    ],
)
def test_bad_input_is_a_422_naming_the_field_and_writes_nothing(api, payload, field):
    response = api.post_json("/api/v1/contacts", payload)
    assert response.status_code == 422, response.content
    assert response["Content-Type"] == "application/problem+json"
    assert any(field in error["loc"] for error in response.json()["errors"]), response.json()
    assert not Contact.objects.exists()


def test_a_body_that_is_not_json_is_a_400(api):
    response = api.post("/api/v1/contacts", data="{nope", content_type="application/json")
    assert response.status_code == 400
    assert response.json()["status"] == 400


def test_upsert_creates_then_merges(api, alice):
    created = api.post_json(
        "/api/v1/contacts/upsert",
        {"email": "ann@example.org", "name": "Ann", "attributes": {"City": "Pune", "Plan": "Pro"}},
    )
    assert created.status_code == 201
    listed = ContactList.objects.create(owner=alice, name="Customers")
    updated = api.post_json(
        "/api/v1/contacts/upsert",
        {"email": "ANN@example.org", "attributes": {"City": "Mumbai", "Plan": ""}, "list_ids": [listed.pk]},
    )
    assert updated.status_code == 200
    body = updated.json()
    assert body["id"] == created.json()["id"]
    assert body["name"] == "Ann"  # absent: left as it was
    assert body["attributes"] == {"City": "Mumbai"}  # merged; an empty value removes one
    assert body["list_ids"] == [listed.pk]


def test_upsert_never_resubscribes_a_suppressed_contact(api, alice):
    contact = Contact.objects.create(owner=alice, email="ann@example.org")
    contact_status.suppress(contact_ids=[contact.pk], status=Contact.Status.UNSUBSCRIBED, now=timezone.now())
    response = api.post_json("/api/v1/contacts/upsert", {"email": "ann@example.org", "name": "Ann"})
    assert response.status_code == 200
    assert response.json()["status"] == "unsubscribed"


def test_an_erased_suppressed_address_comes_back_suppressed(api, alice):
    contact = Contact.objects.create(owner=alice, email="ann@example.org")
    contact_status.suppress(contact_ids=[contact.pk], status=Contact.Status.BOUNCED, now=timezone.now())
    erase_contact(contact=contact)
    for path in ("/api/v1/contacts", "/api/v1/contacts/upsert"):
        response = api.post_json(path, {"email": "Ann@example.org"})
        assert response.status_code == 201, response.content
        assert response.json()["status"] == "bounced"
        Contact.objects.filter(pk=response.json()["id"]).delete()


def test_patch_changes_only_what_is_given(api, alice):
    contact = Contact.objects.create(owner=alice, email="ann@example.org", name="Ann", attributes={"City": "Pune"})
    response = api.patch_json(f"/api/v1/contacts/{contact.pk}", {"attributes": {"Plan": "Pro"}})
    assert response.status_code == 200
    assert response.json()["name"] == "Ann"
    assert response.json()["attributes"] == {"City": "Pune", "Plan": "Pro"}
    assert api.patch_json(f"/api/v1/contacts/{contact.pk}", {"name": ""}).json()["name"] == ""


def test_delete(api, alice):
    contact = Contact.objects.create(owner=alice, email="ann@example.org")
    assert api.delete(f"/api/v1/contacts/{contact.pk}").status_code == 204
    assert not Contact.objects.filter(pk=contact.pk).exists()
    assert api.delete(f"/api/v1/contacts/{contact.pk}").status_code == 404


def test_pages_walk_every_contact_once_in_id_order(api, alice):
    Contact.objects.bulk_create(Contact(owner=alice, email=f"c{n:03}@example.org") for n in range(250))
    seen, cursor, pages = [], None, 0
    while True:
        query = "?limit=100" + (f"&cursor={cursor}" if cursor else "")
        body = api.get(f"/api/v1/contacts{query}").json()
        seen += [item["id"] for item in body["items"]]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert pages == 3
    assert seen == sorted(seen) and len(seen) == len(set(seen)) == 250


def test_filters(api, alice):
    listed = ContactList.objects.create(owner=alice, name="Newsletter")
    ann = Contact.objects.create(owner=alice, email="ann@example.org")
    bea = Contact.objects.create(owner=alice, email="bea@example.org")
    listed.contacts.add(ann)
    contact_status.suppress(contact_ids=[bea.pk], status=Contact.Status.COMPLAINED, now=timezone.now())

    def emails(query):
        return [item["email"] for item in api.get(f"/api/v1/contacts?{query}").json()["items"]]

    assert emails(f"list_id={listed.pk}") == ["ann@example.org"]
    assert emails("status=complained") == ["bea@example.org"]
    assert emails("email=ANN@example.org") == ["ann@example.org"]
    assert api.get("/api/v1/contacts?status=gone").status_code == 422
    assert api.get("/api/v1/contacts?cursor=!!").status_code == 422


def test_an_unknown_query_parameter_is_refused_not_ignored(api, alice):
    Contact.objects.create(owner=alice, email="ann@example.org")
    response = api.get("/api/v1/contacts?stauts=bounced")
    assert response.status_code == 422
    assert response.json()["errors"][0]["loc"] == ["stauts"]
    assert api.get("/api/v1/lists?cursor=0&=null").status_code == 422
    assert api.get("/api/v1/contacts?email=a@example.org&email=b@example.org").status_code == 422
    assert api.get("/api/v1/contacts?status=subscribed&limit=5").status_code == 200


def test_text_with_a_nul_character_is_refused(api):
    assert api.get("/api/v1/contacts?email=a%00@example.org").status_code == 422
    response = api.post_json("/api/v1/contacts", {"email": "a@example.org", "attributes": {"City": "Pu\u0000ne"}})
    assert response.status_code == 422
    assert not Contact.objects.exists()


def test_an_unknown_body_field_is_refused(api):
    response = api.post_json("/api/v1/contacts", {"email": "a@example.org", "nmae": "Ann"})
    assert response.status_code == 422
    assert any("nmae" in error["loc"] for error in response.json()["errors"])
    assert not Contact.objects.exists()
