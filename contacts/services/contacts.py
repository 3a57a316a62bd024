"""The writes of Contact.status: suppression, for a bounce, an unsubscribe or a complaint, and the one way back.

Suppressed (Contact.SUPPRESSED_STATUSES) is for good: the contact receives nothing more (the
campaigns app cancels its unsent emails in every campaign on `contacts_suppressed`), no import
resubscribes it, no retry sends to it, unless the person confirms their address again through a subscription form's
email (`resubscribe`).
A contact keeps the first reason it was suppressed for (an unsubscribe after a bounce stays bounced).
"""

from collections.abc import Iterable
from datetime import datetime

from django.db import transaction

from contacts.models import Contact, SubscriptionRequest
from contacts.selectors import suppressed
from contacts.signals import contacts_suppressed


def suppress(*, contact_ids: Iterable[int], status: str, now: datetime) -> int:
    """Suppress these contacts for `status` (bounced, unsubscribed or complained); returns how many changed.

    Their pending and deferred emails are cancelled even when they were suppressed already; rows a
    worker holds (queued) are left to it.
    """
    if status not in Contact.SUPPRESSED_STATUSES:
        raise ValueError(f"{status!r} is not a suppressed status")
    ids = list(contact_ids)
    if not ids:
        return 0
    with transaction.atomic():
        changed = Contact.objects.filter(pk__in=ids, status=Contact.Status.SUBSCRIBED).update(
            status=status, status_changed_at=now, updated_at=now
        )
        contacts_suppressed.send(sender=Contact, contact_ids=ids, now=now)
    return changed


def suppress_if_erased(*, contact: Contact, now: datetime) -> None:
    """A new contact whose address was erased while suppressed starts suppressed as it was (set before saving)."""
    reason = suppressed.erased_reason(owner=contact.owner, address=contact.email)
    if reason:
        contact.status, contact.status_changed_at = reason, now


def resubscribe(*, subscription_request: SubscriptionRequest, now: datetime) -> bool:
    """Subscribe a suppressed contact again, the one way back: its owner's address confirmed by email.

    Only a confirmed SubscriptionRequest opens it (contacts.services.subscriptions.confirm), so no
    import, form submission or admin edit resubscribes anyone silently. Returns whether it changed.
    """
    if subscription_request.confirmed_at is None or subscription_request.contact_id is None:
        raise ValueError("only a confirmed subscription request resubscribes a contact")
    return bool(
        Contact.objects.filter(
            pk=subscription_request.contact_id,
            owner_id=subscription_request.form.owner_id,
            status__in=Contact.SUPPRESSED_STATUSES,
        ).update(status=Contact.Status.SUBSCRIBED, status_changed_at=now, updated_at=now)
    )
