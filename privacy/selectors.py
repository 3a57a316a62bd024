"""Reads for privacy requests: everything held about one contact.

The export is the data itself, as stored: the contact row, its lists, attributes and consent
(its subscription status and when it last changed), every email of the owner's campaigns sent or
meant for it, and the tracking events of those emails. No IP address is ever stored, so none is exported.
"""

from django.db.models import Q, QuerySet

from campaigns.models import Email
from contacts.models import Contact, ContactList
from tracking.models import Event


def emails_of(*, contact: Contact) -> QuerySet:
    """The owner's email rows for this contact: linked to it, or to its address (a contact deleted and made again)."""
    return Email.objects.filter(campaign__owner_id=contact.owner_id).filter(
        Q(contact=contact) | Q(to_email=contact.email)
    )


def contact_record(*, contact: Contact) -> dict:
    """Everything held about the contact, as plain JSON-ready values (datetimes as ISO 8601 text)."""
    emails = emails_of(contact=contact).select_related("campaign").order_by("id")
    events = Event.objects.filter(email__in=emails).select_related("campaign", "link").order_by("at", "id")
    own_lists = ContactList.objects.filter(owner_id=contact.owner_id, contacts=contact).order_by("name")
    return {
        "contact": {
            "id": contact.pk,
            "email": contact.email,
            "name": contact.name,
            "created_at": _iso(contact.created_at),
            "updated_at": _iso(contact.updated_at),
        },
        "consent": {"status": contact.status, "status_changed_at": _iso(contact.status_changed_at)},
        "attributes": dict(contact.attributes or {}),
        "lists": [contact_list.name for contact_list in own_lists],
        "emails": [_email_dict(email) for email in emails],
        "events": [_event_dict(event) for event in events],
    }


def _email_dict(email):
    return {
        "campaign": email.campaign.name,
        "subject": email.campaign.subject,
        "to_email": email.to_email,
        "to_name": email.to_name,
        "status": email.status,
        "sent_at": _iso(email.sent_at),
        "smtp_code": email.smtp_code,
        "smtp_response": email.smtp_response,
        "first_opened_at": _iso(email.first_opened_at),
        "open_count": email.open_count,
        "machine_open": email.machine_open,
        "first_clicked_at": _iso(email.first_clicked_at),
        "click_count": email.click_count,
        "unsubscribed_at": _iso(email.unsubscribed_at),
        "bounced_at": _iso(email.bounced_at),
        "bounce_kind": email.bounce_kind,
        "bounce_status": email.bounce_status,
        "bounce_text": email.bounce_text,
        "complained_at": _iso(email.complained_at),
    }


def _event_dict(event):
    return {
        "campaign": event.campaign.name,
        "kind": event.kind,
        "at": _iso(event.at),
        "link": event.link.url if event.link_id else "",
        "user_agent": event.user_agent,
        "is_machine": event.is_machine,
    }


RECORD_HEADERS = ["section", "item", "field", "value"]


def contact_record_rows(*, record: dict) -> list[list]:
    """The record as CSV rows (section, item number, field, value): one row per stored value."""
    rows = [["contact", 1, field, value] for field, value in record["contact"].items()]
    rows += [["consent", 1, field, value] for field, value in record["consent"].items()]
    rows += [["attribute", 1, key, value] for key, value in record["attributes"].items()]
    rows += [["list", n, "name", name] for n, name in enumerate(record["lists"], start=1)]
    for section, items in (("email", record["emails"]), ("event", record["events"])):
        rows += [[section, n, field, value] for n, item in enumerate(items, start=1) for field, value in item.items()]
    return rows


def _iso(moment):
    return moment.isoformat() if moment else None
