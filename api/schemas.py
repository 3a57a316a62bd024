"""The API's request and response shapes (pydantic, through django-ninja); the OpenAPI document is made from them."""

from datetime import datetime
from typing import Any, Literal

from ninja import Field, Schema
from pydantic import ConfigDict

from contacts.models import Contact, ContactList

ContactStatus = Literal["subscribed", "unsubscribed", "bounced", "complained"]
Attributes = dict[str, str]
MAX_LISTS_PER_REQUEST = 100


class Input(Schema):
    """A request body: a field it does not know is refused (a misspelt one would otherwise be lost)."""

    model_config = ConfigDict(extra="forbid")


class FieldError(Schema):
    loc: list[str | int]
    msg: str
    type: str


class Problem(Schema):
    """RFC 9457 problem details."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str
    errors: list[FieldError] | None = None
    existing: dict[str, Any] | None = None


# The errors any authenticated operation may answer; operations add their own (404, 409).
ERRORS: dict[int, type[Schema]] = {400: Problem, 401: Problem, 413: Problem, 422: Problem, 429: Problem}
ERRORS_404: dict[int, type[Schema]] = {**ERRORS, 404: Problem}


class ContactOut(Schema):
    id: int
    email: str
    name: str
    status: ContactStatus
    attributes: Attributes
    list_ids: list[int]
    consent_at: datetime | None
    created_at: datetime
    updated_at: datetime

    @staticmethod
    def resolve_list_ids(contact: Contact) -> list[int]:
        return sorted(contact_list.pk for contact_list in contact.lists.all())


class ContactPage(Schema):
    items: list[ContactOut]
    next_cursor: str | None = Field(None, description="Pass as `cursor` for the next page; null on the last.")


class ContactIn(Input):
    email: str = Field(..., max_length=254)
    name: str = Field("", max_length=200)
    attributes: Attributes = Field(default_factory=dict, description="Text values by attribute name.")
    list_ids: list[int] = Field(default_factory=list, max_length=MAX_LISTS_PER_REQUEST)


class ContactUpsert(Input):
    email: str = Field(..., max_length=254)
    name: str | None = Field(None, max_length=200, description="Left as it is when null or absent.")
    attributes: Attributes = Field(
        default_factory=dict, description="Merged into the contact's by name; an empty value removes one."
    )
    list_ids: list[int] = Field(
        default_factory=list, max_length=MAX_LISTS_PER_REQUEST, description="Lists to add it to."
    )


class ContactPatch(Input):
    name: str | None = Field(None, max_length=200)
    attributes: Attributes = Field(default_factory=dict)
    list_ids: list[int] = Field(default_factory=list, max_length=MAX_LISTS_PER_REQUEST)


class ListOut(Schema):
    id: int
    name: str
    description: str
    contact_count: int
    subscribed_count: int
    created_at: datetime

    @staticmethod
    def resolve_contact_count(contact_list: ContactList) -> int:
        return int(getattr(contact_list, "contact_count", 0))

    @staticmethod
    def resolve_subscribed_count(contact_list: ContactList) -> int:
        return int(getattr(contact_list, "subscribed_count", 0))


class ListPage(Schema):
    items: list[ListOut]
    next_cursor: str | None = None


class ListIn(Input):
    name: str = Field(..., min_length=1, max_length=200)
    description: str = Field("", max_length=5000)


class ListPatch(Input):
    name: str | None = Field(None, min_length=1, max_length=200)
    description: str | None = Field(None, max_length=5000)


class Members(Input):
    contact_ids: list[int] = Field(..., min_length=1, max_length=10_000)


class Added(Schema):
    added: int


class BulkContact(Input):
    email: str = Field(..., max_length=254)
    name: str | None = Field(None, max_length=200)
    attributes: Attributes = Field(default_factory=dict)


class BulkIn(Input):
    contacts: list[BulkContact] = Field(..., min_length=1, max_length=10_000)
    list_ids: list[int] = Field(default_factory=list, max_length=MAX_LISTS_PER_REQUEST)


class Rejected(Schema):
    index: int
    email: str
    reason: str


class BulkOut(Schema):
    created: int
    updated: int
    unchanged: int
    suppressed: int = Field(..., description="Unsubscribed, bounced, complained or erased: left as they are.")
    rejected: list[Rejected]
