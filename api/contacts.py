"""/contacts: the owner's contacts, read and written through the contacts app's selectors and services."""

from django.http import Http404
from django.utils import timezone
from ninja import Field, Query, Router, Schema, Status

from api import pages
from api.auth import ApiRequest
from api.problems import Conflict
from api.schemas import (
    ERRORS,
    ERRORS_404,
    BulkIn,
    BulkOut,
    ContactIn,
    ContactOut,
    ContactPage,
    ContactPatch,
    ContactStatus,
    ContactUpsert,
    Problem,
)
from contacts.models import Contact
from contacts.selectors import records as read
from contacts.services import records as write

router = Router(tags=["contacts"])


class ContactQuery(Schema):
    status: ContactStatus | None = None
    list_id: int | None = None
    email: str | None = None
    updated_since: str | None = Field(
        None, json_schema_extra={"format": "date-time"}, description="RFC 3339, e.g. 2026-12-08T10:00:00Z."
    )
    cursor: str | None = Field(None, pattern=pages.CURSOR, description="The next_cursor of the page before.")
    limit: int = Field(pages.DEFAULT_LIMIT, ge=1, le=pages.MAX_LIMIT)


@router.get("/contacts", response={200: ContactPage, **ERRORS}, summary="List contacts")
def list_contacts(request: ApiRequest, query: Query[ContactQuery]) -> dict[str, object]:
    where = read.ContactFilter(
        status=query.status,
        list_id=query.list_id,
        email=query.email,
        updated_since=pages.moment(query.updated_since, "updated_since"),
    )
    after = pages.after_id(query.cursor)
    rows = read.contacts_page(owner=request.auth, where=where, after_id=after, limit=query.limit)
    return {"items": rows, "next_cursor": pages.next_cursor(rows, query.limit)}


@router.post("/contacts", response={201: ContactOut, 409: Problem, **ERRORS}, summary="Create a contact")
def create_contact(request: ApiRequest, payload: ContactIn) -> Status[Contact]:
    fields = write.ContactFields(name=payload.name, attributes=payload.attributes, list_ids=tuple(payload.list_ids))
    try:
        contact = write.create_contact(owner=request.auth, email=payload.email, fields=fields, now=timezone.now())
    except write.ContactExists as exists:
        raise Conflict(str(exists), existing={"id": exists.contact.pk}) from None
    return Status(201, _reread(request, contact.pk))


@router.post(
    "/contacts/upsert",
    response={200: ContactOut, 201: ContactOut, **ERRORS},
    summary="Create or update a contact by address",
    description="201 when the contact is new, 200 when it existed. A suppressed contact stays suppressed.",
)
def upsert_contact(request: ApiRequest, payload: ContactUpsert) -> Status[Contact]:
    fields = write.ContactFields(name=payload.name, attributes=payload.attributes, list_ids=tuple(payload.list_ids))
    contact, created = write.upsert_contact(owner=request.auth, email=payload.email, fields=fields, now=timezone.now())
    return Status(201 if created else 200, _reread(request, contact.pk))


@router.post(
    "/contacts/bulk",
    response={200: BulkOut, **ERRORS},
    summary="Create or update up to 10,000 contacts",
    description=(
        "Rows of one address merge in order. Suppressed and erased addresses are left as they are; a bad row "
        "is rejected with its index and the others are written. Larger sets: several requests, or an import."
    ),
)
def bulk_upsert(request: ApiRequest, payload: BulkIn) -> write.BulkResult:
    rows = [write.BulkRow(email=row.email, name=row.name, attributes=row.attributes) for row in payload.contacts]
    return write.bulk_upsert(owner=request.auth, rows=rows, list_ids=payload.list_ids, now=timezone.now())


@router.get("/contacts/{contact_id}", response={200: ContactOut, **ERRORS_404}, summary="Get a contact")
def get_contact(request: ApiRequest, contact_id: int) -> Contact:
    return _owned(request, contact_id)


@router.patch("/contacts/{contact_id}", response={200: ContactOut, **ERRORS_404}, summary="Update a contact")
def update_contact(request: ApiRequest, contact_id: int, payload: ContactPatch) -> Contact:
    contact = _owned(request, contact_id)
    fields = write.ContactFields(name=payload.name, attributes=payload.attributes, list_ids=tuple(payload.list_ids))
    write.update_contact(contact=contact, fields=fields)
    return _reread(request, contact_id)


@router.delete("/contacts/{contact_id}", response={204: None, **ERRORS_404}, summary="Delete a contact")
def delete_contact(request: ApiRequest, contact_id: int) -> Status[None]:
    write.delete_contact(contact=_owned(request, contact_id))
    return Status(204, None)


def _owned(request: ApiRequest, contact_id: int) -> Contact:
    contact = read.owned_contact(owner=request.auth, contact_id=contact_id)
    if contact is None:
        raise Http404("No such contact.")
    return contact


def _reread(request: ApiRequest, contact_id: int) -> Contact:
    return _owned(request, contact_id)
