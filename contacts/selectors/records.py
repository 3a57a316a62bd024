"""Reads of contacts and lists one owner at a time, in pages the API walks by cursor (ascending id)."""

from dataclasses import dataclass
from datetime import datetime

from django.db.models import Count, Q, QuerySet

from accounts.models import User
from contacts.models import Contact, ContactList


@dataclass(frozen=True)
class ContactFilter:
    status: str | None = None
    list_id: int | None = None
    email: str | None = None
    updated_since: datetime | None = None


def contacts_page(*, owner: User, where: ContactFilter, after_id: int, limit: int) -> list[Contact]:
    """Up to `limit` of the owner's contacts matching `where` with ids above `after_id`, by id."""
    contacts = Contact.objects.filter(owner=owner, pk__gt=after_id)
    if where.status:
        contacts = contacts.filter(status=where.status)
    if where.list_id is not None:
        contacts = contacts.filter(lists__id=where.list_id)
    if where.email:
        contacts = contacts.filter(email=where.email.strip().lower())
    if where.updated_since is not None:
        contacts = contacts.filter(updated_at__gte=where.updated_since)
    return list(with_list_ids(contacts).order_by("pk")[:limit])


def owned_contact(*, owner: User, contact_id: int) -> Contact | None:
    return with_list_ids(Contact.objects.filter(owner=owner, pk=contact_id)).first()


def list_ids_of(contact: Contact) -> list[int]:
    return sorted(contact.lists.values_list("pk", flat=True))


def with_list_ids(contacts: QuerySet[Contact]) -> QuerySet[Contact]:
    return contacts.prefetch_related("lists")


def lists_page(*, owner: User, after_id: int, limit: int) -> list[ContactList]:
    return list(_counted(ContactList.objects.filter(owner=owner, pk__gt=after_id)).order_by("pk")[:limit])


def owned_list(*, owner: User, list_id: int) -> ContactList | None:
    return _counted(ContactList.objects.filter(owner=owner, pk=list_id)).first()


def _counted(lists: QuerySet[ContactList]) -> QuerySet[ContactList]:
    return lists.annotate(
        contact_count=Count("contacts", distinct=True),
        subscribed_count=Count("contacts", filter=Q(contacts__status=Contact.Status.SUBSCRIBED), distinct=True),
    )
