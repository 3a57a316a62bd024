"""Writes of the public subscription forms: a submission, and the confirmation that subscribes.

A submission to a double opt-in form records a SubscriptionRequest and mails its confirmation link
from a Celery task (the page does not wait for the SMTP server); nothing is on the list until the link
is opened. A single opt-in form (for people who consented elsewhere) subscribes a new address at once;
an address among the owner's contacts already goes the double opt-in way, since a stranger may not
change a contact's name, attributes, lists or consent, nor bring back one who unsubscribed, bounced or
complained (contacts.resubscribe: only a confirmed request does).

Whatever the address's state, a valid submission gets the same answer: the page tells no stranger
whether an address is a contact, suppressed, or was mailed lately.
"""

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from celery import current_app
from django.conf import settings
from django.core.cache import cache
from django.db import IntegrityError, transaction
from django.utils.crypto import salted_hmac
from kombu.exceptions import OperationalError as BrokerUnavailable

from accounts.rate_limits import over_limit
from contacts.addresses import normalize_address, validate_contact_email
from contacts.models import Contact, SubscriptionForm, SubscriptionRequest
from contacts.selectors import subscriptions as selectors
from contacts.services import contacts
from contacts.subscriptions import confirmation_mail, tokens

# contacts.tasks.send_subscription_confirmation, queued by its registered name: that module calls this one.
CONFIRMATION_TASK = "campaigns.send_subscription_confirmation"

log = logging.getLogger(__name__)

ATTRIBUTE_MAX_LENGTH = 200


class SubscriptionError(Exception):
    """Said on the page as it is; the submission's values stay on the form."""


class RateLimited(SubscriptionError):
    pass


@dataclass
class Submission:
    """The answer to a valid submission: it depends on the form alone, never on the address's state."""

    CHECK_INBOX = "check_inbox"  # double opt-in: a confirmation email is on its way, if the address takes mail
    THANKS = "thanks"  # single opt-in: a new address is on the list now, a known one is mailed a link

    outcome: str
    email: str


@dataclass
class Confirmation:
    request: SubscriptionRequest
    contact: Contact | None  # None when the link was confirmed before and its contact deleted since
    resubscribed: bool
    already_confirmed: bool


def subscribe_request(
    *,
    form: SubscriptionForm,
    email: str,
    name: str,
    attributes: Mapping[str, object],
    honeypot: str,
    ip: str,
    client_key: str,
    now: datetime,
) -> Submission:
    """Handle one submission of `form` from the client at `ip`, whose submissions count under `client_key`
    (accounts.client_address.rate_limit_key). Raises ValidationError (the address), SubscriptionError (closed,
    rate limited)."""
    if not form.enabled:
        raise SubscriptionError("This form no longer takes sign-ups.")
    address = normalize_address(email)
    answer = Submission(outcome=Submission.CHECK_INBOX if form.double_opt_in else Submission.THANKS, email=address)
    if honeypot:
        # A bot filled the field people never see: answer as for anyone, do nothing, count nothing (so
        # that it uses up no real visitor's budget behind the same address).
        return answer
    _count_against_limits(form=form, client_key=client_key)
    validate_contact_email(address)
    request = SubscriptionRequest(
        form=form,
        email=address,
        name=name.strip()[:200],
        attributes=_picked_attributes(form, attributes),
        consent_text=form.consent_text,
        ip_hash=tokens.hash_ip(ip),
        created_at=now,
    )
    if form.double_opt_in or not _subscribed_as_new_contact(request=request, now=now):
        _mail_confirmation(request=request, now=now)
    return answer


def confirm(*, token: str, now: datetime) -> Confirmation:
    """Open a confirmation link: subscribe its address to the form's list; the same link again changes nothing.

    Raises SubscriptionError for a forged, expired or unknown link."""
    try:
        request_id, address = selectors.confirmation_link(token=token)
    except selectors.LinkNotValid as exc:
        raise SubscriptionError(str(exc)) from exc
    with transaction.atomic():
        request = (
            SubscriptionRequest.objects.select_for_update(of=("self",))
            .select_related("form__contact_list", "form__owner")
            .filter(pk=request_id, email=address)
            .first()
        )
        if request is None:
            raise SubscriptionError(selectors.NOT_VALID)
        if request.confirmed_at is not None:
            return Confirmation(request=request, contact=request.contact, resubscribed=False, already_confirmed=True)
        contact, resubscribed = _subscribe(request=request, now=now)
    return Confirmation(request=request, contact=contact, resubscribed=resubscribed, already_confirmed=False)


def _subscribed_as_new_contact(*, request: SubscriptionRequest, now: datetime) -> bool:
    """Single opt-in: create the address's contact and subscribe it. False, with nothing written, when the
    owner has a contact with this address already: changing it takes the address's own confirmation."""
    with transaction.atomic():
        contact = _new_contact(owner_id=request.form.owner_id, address=request.email)
        if contact is None:
            return False
        request.save()
        _subscribe(request=request, now=now, contact=contact)
    return True


def _new_contact(*, owner_id: int, address: str) -> Contact | None:
    """A contact created for `address`, or None if the owner has one (the unique constraint decides a race)."""
    if Contact.objects.filter(owner_id=owner_id, email=address).exists():
        return None
    try:
        with transaction.atomic():
            return Contact.objects.create(owner_id=owner_id, email=address)
    except IntegrityError:
        return None


def _mail_confirmation(*, request: SubscriptionRequest, now: datetime) -> None:
    """Record the request and queue its email, unless this address was mailed within the hour (for this owner)."""
    interval = settings.SUBSCRIPTION_MAIL_INTERVAL
    key = _mailed_key(owner_id=request.form.owner_id, address=request.email)
    # The cache's add decides between simultaneous submissions; the rows still hold if the cache was emptied.
    mailed_lately = SubscriptionRequest.objects.filter(
        form__owner_id=request.form.owner_id,
        email=request.email,
        mailed_at__gt=now - timedelta(seconds=interval),
    ).exists()
    if mailed_lately or not cache.add(key, 1, timeout=interval):
        # Mailed within the hour already: the form must not make us mail anyone over and over.
        return
    request.mailed_at = now
    request.save()
    transaction.on_commit(lambda: _queue_confirmation(request=request))


def send_confirmation(*, request_id: int) -> None:
    """Mail the confirmation link of a recorded request (the task's work). A link the server refused or
    could not take is logged for the operator and the request forgotten, so that a retry may mail at once."""
    request = (
        SubscriptionRequest.objects.select_related("form__owner", "form__smtp_account")
        .filter(pk=request_id, confirmed_at__isnull=True)
        .first()
    )
    if request is None:  # gone meanwhile (its form deleted) or confirmed already (a task delivered twice)
        return
    try:
        confirmation_mail.send(request=request)
    except confirmation_mail.ConfirmationNotSent as exc:
        log.warning("confirmation of subscription request %s not sent: %s", request.pk, exc)
        _forget_mailing(request=request)


def _queue_confirmation(*, request: SubscriptionRequest) -> None:
    try:
        current_app.tasks[CONFIRMATION_TASK].delay(request.pk)
    except BrokerUnavailable:
        log.exception("confirmation of subscription request %s not queued: the broker did not answer", request.pk)
        _forget_mailing(request=request)


def _forget_mailing(*, request: SubscriptionRequest) -> None:
    """Nothing went out: the request goes, and the address may be mailed again at once."""
    request.delete()
    cache.delete(_mailed_key(owner_id=request.form.owner_id, address=request.email))


def _subscribe(*, request: SubscriptionRequest, now: datetime, contact: Contact | None = None) -> tuple[Contact, bool]:
    """The contact for the request's address, on the list, subscribed, its consent recorded."""
    form = request.form
    contact = contact or _contact_for(owner_id=form.owner_id, address=request.email)
    if request.name and not contact.name:
        contact.name = request.name
    contact.attributes = {**(contact.attributes or {}), **request.attributes}
    contact.consent_at = now
    contact.consent_form = form
    contact.consent_text = request.consent_text
    contact.consent_ip_hash = request.ip_hash
    contact.save(
        update_fields=[
            "name",
            "attributes",
            "consent_at",
            "consent_form",
            "consent_text",
            "consent_ip_hash",
            "updated_at",
        ]
    )
    request.contact = contact
    request.confirmed_at = now
    request.save(update_fields=["contact", "confirmed_at"])
    resubscribed = contact.status in Contact.SUPPRESSED_STATUSES and contacts.resubscribe(
        subscription_request=request, now=now
    )
    if resubscribed:
        contact.refresh_from_db(fields=["status", "status_changed_at"])
    form.contact_list.contacts.add(contact)
    return contact, resubscribed


def _contact_for(*, owner_id: int, address: str) -> Contact:
    contact = Contact.objects.filter(owner_id=owner_id, email=address).first()
    if contact is not None:
        return contact
    try:
        with transaction.atomic():
            return Contact.objects.create(owner_id=owner_id, email=address)
    except IntegrityError:
        # Created meanwhile (an import, a second confirmation in flight): use that one.
        return Contact.objects.get(owner_id=owner_id, email=address)


def _picked_attributes(form: SubscriptionForm, attributes: Mapping[str, object]) -> dict[str, str]:
    """Only the attributes the form asks for, trimmed; blank answers left out."""
    picked = {}
    for field_name in form.attributes_asked:
        value = str(attributes.get(field_name, "") or "").strip()[:ATTRIBUTE_MAX_LENGTH]
        if value:
            picked[field_name] = value
    return picked


def _count_against_limits(*, form: SubscriptionForm, client_key: str) -> None:
    window = settings.SUBSCRIBE_RATE_WINDOW
    # Per form: a client busy on one marketer's form is not held back on another's. Hashed: no address is
    # kept, not even in the cache.
    client_bucket = f"subscribe:client:{form.pk}:{tokens.hash_ip(client_key)}"
    if over_limit(client_bucket, limit=settings.SUBSCRIBE_LIMIT_PER_IP, window=window):
        raise RateLimited("Too many sign-ups from your network in the last hour. Please try again later.")
    if over_limit(f"subscribe:list:{form.contact_list_id}", limit=settings.SUBSCRIBE_LIMIT_PER_LIST, window=window):
        raise RateLimited("This form is taking too many sign-ups right now. Please try again later.")


def _mailed_key(*, owner_id: int, address: str) -> str:
    # Per owner: one marketer's form must not reveal that another's mailed this address.
    digest = salted_hmac("contacts.subscriptions.mailed", address, algorithm="sha256").hexdigest()
    return f"subscribe:mailed:{owner_id}:{digest}"
