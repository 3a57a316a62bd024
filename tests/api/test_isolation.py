"""Another marketer's objects do not exist for a token: every id of theirs is a 404, never a 403."""

import pytest

from contacts.models import Contact, ContactList


@pytest.fixture
def bobs(bob):
    contact = Contact.objects.create(owner=bob, email="bobs.customer@example.org", name="Bob's")
    contact_list = ContactList.objects.create(owner=bob, name="Bob's list")
    contact_list.contacts.add(contact)
    return contact, contact_list


def test_another_marketers_contact_is_a_404_everywhere(api, bobs):
    contact, contact_list = bobs
    assert api.get(f"/api/v1/contacts/{contact.pk}").status_code == 404
    assert api.patch_json(f"/api/v1/contacts/{contact.pk}", {"name": "Mine"}).status_code == 404
    assert api.delete(f"/api/v1/contacts/{contact.pk}").status_code == 404
    assert api.get("/api/v1/contacts?email=bobs.customer@example.org").json()["items"] == []
    assert api.get(f"/api/v1/contacts?list_id={contact_list.pk}").json()["items"] == []
    contact.refresh_from_db()
    assert contact.name == "Bob's"


def test_another_marketers_list_is_a_404_everywhere(api, alice, bobs):
    contact, contact_list = bobs
    mine = Contact.objects.create(owner=alice, email="ann@example.org")
    path = f"/api/v1/lists/{contact_list.pk}"
    assert api.get(path).status_code == 404
    assert api.patch_json(path, {"name": "Mine"}).status_code == 404
    assert api.delete(path).status_code == 404
    assert api.post_json(f"{path}/contacts", {"contact_ids": [mine.pk]}).status_code == 404
    assert api.delete(f"{path}/contacts/{contact.pk}").status_code == 404
    assert api.get("/api/v1/lists").json()["items"] == []
    assert list(contact_list.contacts.all()) == [contact]


def test_another_marketers_ids_in_a_body_are_refused(api, alice, bobs):
    contact, contact_list = bobs
    mine = ContactList.objects.create(owner=alice, name="Mine")
    refused = api.post_json("/api/v1/contacts", {"email": "ann@example.org", "list_ids": [contact_list.pk]})
    assert refused.status_code == 422
    assert not Contact.objects.filter(owner=alice).exists()
    assert api.post_json(f"/api/v1/lists/{mine.pk}/contacts", {"contact_ids": [contact.pk]}).status_code == 422
    assert not mine.contacts.exists()


def test_the_same_address_is_separate_per_marketer(api, bob_api, bobs):
    created = api.post_json("/api/v1/contacts", {"email": "bobs.customer@example.org"})
    assert created.status_code == 201
    assert created.json()["id"] != bobs[0].pk
    assert bob_api.get(f"/api/v1/contacts/{created.json()['id']}").status_code == 404
