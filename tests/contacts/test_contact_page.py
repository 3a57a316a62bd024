"""A contact's page: the lists it is in, and its attributes edited as rows of name and value (stored as JSON)."""

import pytest
from django.urls import reverse

from contacts.models import Contact
from tests.factories import ContactFactory, ContactListFactory

pytestmark = pytest.mark.django_db


def change_url(contact):
    return reverse("admin:contacts_contact_change", args=[contact.pk])


def post_rows(client, contact, rows, **fields):
    data = {"email": contact.email, "name": contact.name, **fields}
    data["attributes_key"] = [key for key, _ in rows]
    data["attributes_value"] = [value for _, value in rows]
    return client.post(change_url(contact), data)


def test_the_page_shows_the_contacts_own_lists_as_links(marketer_client, marketer, other_marketer):
    contact = ContactFactory(owner=marketer)
    mine = ContactListFactory(owner=marketer, name="Trade fair 2026", contacts=[contact])
    ContactListFactory(owner=other_marketer, name="Someone else's list", contacts=[contact])

    page = marketer_client.get(change_url(contact)).content.decode()

    assert f'<a href="{reverse("admin:contacts_contactlist_change", args=[mine.pk])}">Trade fair 2026</a>' in page
    assert "Someone else" not in page


def test_a_contact_in_no_list_says_so(marketer_client, marketer):
    page = marketer_client.get(change_url(ContactFactory(owner=marketer))).content.decode()
    assert "In no list." in page


def test_attributes_show_as_rows_with_blank_rows_to_add(marketer_client, marketer):
    contact = ContactFactory(owner=marketer, attributes={"City": "Pune", "Plan": "Gold"})

    page = marketer_client.get(change_url(contact)).content.decode()

    assert 'name="attributes_key" value="City"' in page
    assert 'name="attributes_value" value="Pune"' in page
    assert page.count('name="attributes_key"') == 2 + 3
    assert "{&quot;City&quot;" not in page  # no raw JSON


def test_rows_are_saved_as_the_json_object_edited_added_and_removed(marketer_client, marketer):
    contact = ContactFactory(owner=marketer, attributes={"City": "Pune", "Plan": "Gold", "Score": 7})

    response = post_rows(
        marketer_client,
        contact,
        [("City", "Köln"), ("", ""), ("Score", "7"), ("Company", " Acme "), ("", "")],
    )

    assert response.status_code == 302, response.content.decode()[:3000]
    contact.refresh_from_db()
    # Plan removed (its row cleared), City edited, Company added, Score shown unchanged keeps its number.
    assert contact.attributes == {"City": "Köln", "Score": 7, "Company": " Acme "}


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ([("", "orphan")], "Row 1: give the value “orphan” a name, or clear it."),
        ([("City", "a"), ("city", "b")], "Row 2: “city” is named twice (row 1 too)."),
        ([("Email", "x@example.org")], "Row 1: “Email” is the contact&#x27;s own field; edit it above."),
        ([("K" * 101, "v")], "is longer than 100 characters."),
    ],
)
def test_a_bad_row_is_refused_with_its_reason_and_nothing_is_lost(marketer_client, marketer, rows, message):
    contact = ContactFactory(owner=marketer, attributes={"City": "Pune"})

    response = post_rows(marketer_client, contact, [*rows, ("Plan", "Gold")], name="New name")

    assert response.status_code == 200
    page = response.content.decode()
    assert message in page
    # What was typed is shown again, so nothing is lost; nothing is saved.
    assert 'name="attributes_value" value="Gold"' in page
    assert Contact.objects.get(pk=contact.pk).attributes == {"City": "Pune"}
    assert Contact.objects.get(pk=contact.pk).name != "New name"


def test_another_marketers_contact_is_a_404(marketer_client, other_marketer):
    theirs = ContactFactory(owner=other_marketer)
    assert marketer_client.get(change_url(theirs)).status_code == 404
    assert post_rows(marketer_client, theirs, [("City", "x")]).status_code == 404
