"""/lists: the owner's contact lists and their members."""

from django.http import Http404
from ninja import Query, Router, Status

from api import pages
from api.auth import ApiRequest
from api.schemas import ERRORS, ERRORS_404, Added, ListIn, ListOut, ListPage, ListPatch, Members
from contacts.models import ContactList
from contacts.selectors import records as read
from contacts.services import records as write

router = Router(tags=["lists"])


@router.get("/lists", response={200: ListPage, **ERRORS}, summary="List contact lists")
def list_lists(request: ApiRequest, query: Query[pages.PageQuery]) -> dict[str, object]:
    cursor, limit = query.cursor, query.limit
    rows = read.lists_page(owner=request.auth, after_id=pages.after_id(cursor), limit=limit)
    return {"items": rows, "next_cursor": pages.next_cursor(rows, limit)}


@router.post("/lists", response={201: ListOut, **ERRORS}, summary="Create a list")
def create_list(request: ApiRequest, payload: ListIn) -> Status[ContactList]:
    contact_list = write.create_list(owner=request.auth, name=payload.name, description=payload.description)
    return Status(201, _owned(request, contact_list.pk))


@router.get("/lists/{list_id}", response={200: ListOut, **ERRORS_404}, summary="Get a list")
def get_list(request: ApiRequest, list_id: int) -> ContactList:
    return _owned(request, list_id)


@router.patch("/lists/{list_id}", response={200: ListOut, **ERRORS_404}, summary="Rename or describe a list")
def update_list(request: ApiRequest, list_id: int, payload: ListPatch) -> ContactList:
    write.update_list(contact_list=_owned(request, list_id), name=payload.name, description=payload.description)
    return _owned(request, list_id)


@router.delete(
    "/lists/{list_id}",
    response={204: None, **ERRORS_404},
    summary="Delete a list",
    description="Its contacts stay, on their other lists or on none.",
)
def delete_list(request: ApiRequest, list_id: int) -> Status[None]:
    write.delete_list(contact_list=_owned(request, list_id))
    return Status(204, None)


@router.post("/lists/{list_id}/contacts", response={200: Added, **ERRORS_404}, summary="Add contacts to a list")
def add_members(request: ApiRequest, list_id: int, payload: Members) -> dict[str, int]:
    added = write.add_to_list(contact_list=_owned(request, list_id), contact_ids=payload.contact_ids)
    return {"added": added}


@router.delete(
    "/lists/{list_id}/contacts/{contact_id}",
    response={204: None, **ERRORS_404},
    summary="Remove a contact from a list",
)
def remove_member(request: ApiRequest, list_id: int, contact_id: int) -> Status[None]:
    if not write.remove_from_list(contact_list=_owned(request, list_id), contact_id=contact_id):
        raise Http404("This contact is not on this list.")
    return Status(204, None)


def _owned(request: ApiRequest, list_id: int) -> ContactList:
    contact_list = read.owned_list(owner=request.auth, list_id=list_id)
    if contact_list is None:
        raise Http404("No such list.")
    return contact_list
