"""Contacts made, changed and deleted one at a time, and their list memberships: the API's entry.

Every new contact goes through `suppress_if_erased` (contacts.services.contacts): an address its
owner erased while suppressed comes back suppressed, never mailable. A contact's status is never
changed here: suppression and the one way back are contacts.services.contacts'.
"""

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from accounts.models import User
from contacts.addresses import address_problem, normalize_address
from contacts.imports import writers
from contacts.models import ATTRIBUTE_NAME, Contact, ContactList
from contacts.selectors import suppressed
from contacts.services import contacts

MAX_ATTRIBUTES = 50
MAX_ATTRIBUTE_VALUE = 1000
MAX_BULK = 10_000


class ContactExists(Exception):
    def __init__(self, contact: Contact):
        super().__init__(f"You have a contact with the address {contact.email} already (id {contact.pk}).")
        self.contact = contact


@dataclass(frozen=True)
class ContactFields:
    """What a caller may set on a contact; None leaves a field as it is (attributes merge by name)."""

    name: str | None = None
    attributes: Mapping[str, str] | None = None
    list_ids: tuple[int, ...] = ()


def clean_address(raw: object) -> str:
    address = normalize_address(raw)
    problem = address_problem(address)
    if problem:
        raise ValidationError({"email": f"Enter a valid email address ({problem})."})
    return address


def clean_attributes(attributes: Mapping[str, object]) -> dict[str, str]:
    errors = []
    for name, value in attributes.items():
        if not ATTRIBUTE_NAME.fullmatch(name) or name.lower() in ("email", "name"):
            errors.append(
                f"“{name}” is not an attribute name: letters, digits, spaces, - and _, starting with a letter."
            )
        elif not isinstance(value, str):
            errors.append(f"“{name}” must be text.")
        elif len(value) > MAX_ATTRIBUTE_VALUE:
            errors.append(f"“{name}” is longer than {MAX_ATTRIBUTE_VALUE} characters.")
    if len(attributes) > MAX_ATTRIBUTES:
        errors.append(f"At most {MAX_ATTRIBUTES} attributes.")
    if errors:
        raise ValidationError({"attributes": errors})
    return {name: str(value) for name, value in attributes.items()}


@dataclass(frozen=True)
class BulkRow:
    email: str
    name: str | None = None
    attributes: Mapping[str, object] = field(default_factory=dict)


@dataclass
class BulkResult:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    suppressed: int = 0
    rejected: list[dict[str, object]] = field(default_factory=list)  # {"index", "email", "reason"}


@dataclass
class _Merged:
    name: str = ""
    attributes: dict[str, str] = field(default_factory=dict)


def bulk_upsert(*, owner: User, rows: Sequence[BulkRow], list_ids: Iterable[int], now: datetime) -> BulkResult:
    """Create or update up to MAX_BULK contacts in a few statements, as an import chunk does.

    Rows of one address merge in order (a later non-blank name wins, attributes merge, an empty value
    removes one). A suppressed contact, or an address its owner erased while suppressed, is left as it
    is and counted `suppressed`; a bad row is rejected with its index and reason, and the others are
    written. Every contact written goes on the lists given. The commit is durable when this returns.
    """
    if len(rows) > MAX_BULK:
        raise ValidationError({"contacts": f"At most {MAX_BULK:,} contacts a request; import larger files."})
    lists = _owned_lists(owner=owner, ids=list_ids)
    result = BulkResult()
    merged = _merge_rows(rows, result.rejected)
    existing = writers.existing_contacts(owner=owner, addresses=list(merged))
    erased = suppressed.erased_addresses(owner=owner, addresses=[a for a in merged if a not in existing])
    to_create, to_update, on_list = [], [], []
    for address, row in merged.items():
        contact = existing.get(address)
        if address in erased or (contact is not None and contact.status in Contact.SUPPRESSED_STATUSES):
            result.suppressed += 1
        elif contact is None:
            to_create.append((address, row.name, _without_blanks(row.attributes)))
        else:
            name = row.name or contact.name
            attributes = _without_blanks({**contact.attributes, **row.attributes})
            if (name, attributes) != (contact.name, contact.attributes):
                to_update.append((contact.pk, name, attributes))
            else:
                result.unchanged += 1
            on_list.append(contact.pk)
    if to_create or on_list:
        writers.write_chunk(
            owner=owner,
            contact_lists=lists,
            to_create=to_create,
            to_update=to_update,
            on_list=on_list,
            now=now,
            durable=True,
        )
    result.created, result.updated = len(to_create), len(to_update)
    return result


def _merge_rows(rows: Sequence[BulkRow], rejected: list[dict[str, object]]) -> dict[str, _Merged]:
    merged: dict[str, _Merged] = {}
    for index, row in enumerate(rows):
        address = normalize_address(row.email)
        try:
            problem = address_problem(address)
            if problem:
                raise ValidationError(f"Enter a valid email address ({problem}).")
            attributes = clean_attributes(row.attributes)
            name = _clean_name(row.name or "")
        except ValidationError as refused:
            rejected.append({"index": index, "email": row.email, "reason": " ".join(refused.messages)})
            continue
        into = merged.setdefault(address, _Merged())
        into.name = name or into.name
        into.attributes.update(attributes)
    return merged


def _without_blanks(attributes: Mapping[str, str]) -> dict[str, str]:
    return {name: value for name, value in attributes.items() if value != ""}


def create_contact(*, owner: User, email: str, fields: ContactFields, now: datetime) -> Contact:
    """A new contact; raises ContactExists if the owner has this address (ValidationError for bad input,
    lists not theirs among them)."""
    address = clean_address(email)
    contact = Contact(owner=owner, email=address, name=_clean_name(fields.name or ""))
    contact.attributes = clean_attributes(fields.attributes or {})
    lists = _owned_lists(owner=owner, ids=fields.list_ids)
    contacts.suppress_if_erased(contact=contact, now=now)
    try:
        with transaction.atomic():
            contact.save()
            contact.lists.add(*lists)
    except IntegrityError:
        existing = Contact.objects.filter(owner=owner, email=address).first()
        if existing is None:
            raise
        raise ContactExists(existing) from None
    return contact


def upsert_contact(*, owner: User, email: str, fields: ContactFields, now: datetime) -> tuple[Contact, bool]:
    """The owner's contact with this address, made or updated; returns it and whether it is new."""
    address = clean_address(email)
    existing = Contact.objects.filter(owner=owner, email=address).first()
    if existing is None:
        try:
            return create_contact(owner=owner, email=address, fields=fields, now=now), True
        except ContactExists as exists:  # made by another request meanwhile
            existing = exists.contact
    return update_contact(contact=existing, fields=fields), False


def update_contact(*, contact: Contact, fields: ContactFields) -> Contact:
    """Set the name if given, merge the attributes given (an empty value removes one), add the lists given."""
    lists = _owned_lists(owner=contact.owner, ids=fields.list_ids)
    attributes = clean_attributes(fields.attributes or {})
    with transaction.atomic():
        contact = Contact.objects.select_for_update().get(pk=contact.pk)
        if fields.name is not None:
            contact.name = _clean_name(fields.name)
        merged = {**contact.attributes, **attributes}
        contact.attributes = {name: value for name, value in merged.items() if value != ""}
        contact.save(update_fields=["name", "attributes", "updated_at"])
        contact.lists.add(*lists)
    return contact


def delete_contact(*, contact: Contact) -> None:
    contact.delete()


def add_to_list(*, contact_list: ContactList, contact_ids: Iterable[int]) -> int:
    """Add the list owner's contacts among `contact_ids`; returns how many were not members yet."""
    ids = set(contact_ids)
    owned = set(Contact.objects.filter(owner_id=contact_list.owner_id, pk__in=ids).values_list("pk", flat=True))
    if ids - owned:
        raise ValidationError({"contact_ids": f"No such contact: {', '.join(map(str, sorted(ids - owned)))}."})
    members = set(contact_list.contacts.filter(pk__in=owned).values_list("pk", flat=True))
    contact_list.contacts.add(*(owned - members))
    return len(owned - members)


def remove_from_list(*, contact_list: ContactList, contact_id: int) -> bool:
    removed = contact_list.contacts.filter(pk=contact_id).exists()
    contact_list.contacts.remove(contact_id)
    return removed


def _owned_lists(*, owner: User, ids: Iterable[int]) -> list[ContactList]:
    wanted = set(ids)
    lists = list(ContactList.objects.filter(owner=owner, pk__in=wanted))
    missing = wanted - {contact_list.pk for contact_list in lists}
    if missing:
        raise ValidationError({"list_ids": f"No such list: {', '.join(map(str, sorted(missing)))}."})
    return lists


def _clean_name(name: str) -> str:
    name = name.strip()
    if len(name) > 200:
        raise ValidationError({"name": "At most 200 characters."})
    return name


def create_list(*, owner: User, name: str, description: str = "") -> ContactList:
    contact_list = ContactList(owner=owner, name=_clean_list_name(name), description=description)
    _save_list(contact_list)
    return contact_list


def update_list(*, contact_list: ContactList, name: str | None = None, description: str | None = None) -> ContactList:
    if name is not None:
        contact_list.name = _clean_list_name(name)
    if description is not None:
        contact_list.description = description
    _save_list(contact_list)
    return contact_list


def delete_list(*, contact_list: ContactList) -> None:
    """Delete the list; its contacts stay (they may be on other lists, and campaigns keep their emails)."""
    contact_list.delete()


def _clean_list_name(name: str) -> str:
    name = name.strip()
    if not name or len(name) > 200:
        raise ValidationError({"name": "A list needs a name of 1 to 200 characters."})
    return name


def _save_list(contact_list: ContactList) -> None:
    try:
        with transaction.atomic():
            contact_list.save()
    except IntegrityError:
        raise ValidationError({"name": f"You have a list named “{contact_list.name}” already."}) from None
