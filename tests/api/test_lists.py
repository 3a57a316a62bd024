"""/api/v1/lists: the owner's lists, their counts and members."""

from contacts.models import Contact, ContactList


def test_create_rename_and_delete_a_list(api, alice):
    created = api.post_json("/api/v1/lists", {"name": "Customers", "description": "Paid"})
    assert created.status_code == 201
    list_id = created.json()["id"]
    assert api.post_json("/api/v1/lists", {"name": "Customers"}).status_code == 422
    assert api.patch_json(f"/api/v1/lists/{list_id}", {"name": "Clients"}).json()["name"] == "Clients"
    assert api.delete(f"/api/v1/lists/{list_id}").status_code == 204
    assert not ContactList.objects.filter(pk=list_id).exists()


def test_members_are_added_counted_and_removed(api, alice):
    contact_list = ContactList.objects.create(owner=alice, name="Customers")
    ann = Contact.objects.create(owner=alice, email="ann@example.org")
    bea = Contact.objects.create(owner=alice, email="bea@example.org")
    path = f"/api/v1/lists/{contact_list.pk}/contacts"
    assert api.post_json(path, {"contact_ids": [ann.pk, bea.pk]}).json() == {"added": 2}
    assert api.post_json(path, {"contact_ids": [ann.pk]}).json() == {"added": 0}
    body = api.get(f"/api/v1/lists/{contact_list.pk}").json()
    assert (body["contact_count"], body["subscribed_count"]) == (2, 2)
    assert api.delete(f"{path}/{ann.pk}").status_code == 204
    assert api.delete(f"{path}/{ann.pk}").status_code == 404
    assert list(contact_list.contacts.all()) == [bea]
    assert Contact.objects.filter(pk=ann.pk).exists()  # removed from the list, not deleted


def test_lists_page(api, alice):
    ContactList.objects.bulk_create(ContactList(owner=alice, name=f"L{n}") for n in range(3))
    first = api.get("/api/v1/lists?limit=2").json()
    assert len(first["items"]) == 2 and first["next_cursor"]
    rest = api.get(f"/api/v1/lists?limit=2&cursor={first['next_cursor']}").json()
    assert len(rest["items"]) == 1 and rest["next_cursor"] is None
