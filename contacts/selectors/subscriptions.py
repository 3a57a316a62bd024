"""Reads of the public subscription pages."""

from contacts.models import SubscriptionForm, SubscriptionRequest
from contacts.subscriptions import tokens


class LinkNotValid(Exception):
    """Said on the page as it is."""


def open_form(*, page_token: str) -> SubscriptionForm | None:
    """The enabled form a hosted page's token names, or None."""
    form_id = tokens.read_page_token(page_token)
    if form_id is None:
        return None
    return SubscriptionForm.objects.select_related("owner", "contact_list").filter(pk=form_id, enabled=True).first()


NOT_VALID = "This confirmation link is not valid."


def confirmation_link(*, token: str) -> tuple[int, str]:
    """The (request id, address) a confirmation link signs; raises LinkNotValid (forged, expired)."""
    try:
        return tokens.read_confirm_token(token)
    except tokens.ConfirmationExpired as exc:
        raise LinkNotValid("This confirmation link has expired. Please sign up again.") from exc
    except tokens.ConfirmationInvalid as exc:
        raise LinkNotValid(NOT_VALID) from exc


def request_to_confirm(*, token: str) -> SubscriptionRequest:
    """The request a confirmation link names; raises LinkNotValid (forged, expired, unknown)."""
    request_id, address = confirmation_link(token=token)
    request = SubscriptionRequest.objects.select_related("form__owner").filter(pk=request_id, email=address).first()
    if request is None:
        raise LinkNotValid(NOT_VALID)
    return request
