"""Reads for privacy requests: everything held about one contact, and the erased addresses' hashes.

The export is the data itself, as stored: the contact row, its lists, attributes and consent
(its subscription status and when it last changed), every email of the owner's campaigns sent or
meant for it, and the tracking events of those emails. No IP address is ever stored, so none is exported.
"""

import hashlib

from django.conf import settings
from django.db.models import Q, QuerySet
from django.utils.crypto import salted_hmac
from django.utils.encoding import force_bytes

from campaigns.imports.addresses import normalize_address, normalized_address_sql
from campaigns.models import Contact, ContactList, Email, SuppressedHash
from tracking.models import Event

HASH_SALT = "campaigns.SuppressedHash.address"


def address_hash(address: str, *, secret: str | None = None) -> str:
    """HMAC-SHA256 of the normalised address, keyed from SECRET_KEY: matched, never reversed."""
    return salted_hmac(HASH_SALT, normalize_address(address), secret=secret, algorithm="sha256").hexdigest()


def _secrets():
    # Hashes made under a key since rotated into SECRET_KEY_FALLBACKS still match.
    return [settings.SECRET_KEY, *getattr(settings, "SECRET_KEY_FALLBACKS", [])]


def _hashes(address):
    return [address_hash(address, secret=secret) for secret in _secrets()]


def erased_sql(*, owner_column: str, address_column: str) -> tuple[str, list]:
    """SQL true when the address in `address_column` is one the owner in `owner_column` erased while
    suppressed (erased_addresses, for a statement's every row): (SQL, params). One probe of the
    (owner, hash) index per key."""
    hashes, params = address_hashes_sql(address_column)
    sql = (f"EXISTS (SELECT 1 FROM {SuppressedHash._meta.db_table} erased WHERE erased.owner_id = {owner_column} "
           f"AND erased.address_hash IN ({', '.join(hashes)}))")
    return sql, params


def address_hashes_sql(address_column: str) -> tuple[list[str], list]:
    """address_hash of the address in `address_column` under each key _hashes tries, as SQL: ([SQL], params).

    HMAC-SHA256 spelt out with PostgreSQL's own sha256() (RFC 2104: H(key ^ opad || H(key ^ ipad ||
    message))): pgcrypto's hmac() is not in every server (the embedded PostgreSQL has no pgcrypto)."""
    address, address_params = normalized_address_sql(address_column)
    hashes, params = [], []
    for secret in _secrets():
        inner, outer = _hmac_pads(secret)
        hashes.append(f"encode(sha256(%s::bytea || sha256(%s::bytea || convert_to({address}, 'UTF8'))), 'hex')")
        params += [outer, inner, *address_params]
    return hashes, params


def _hmac_pads(secret):
    """The inner and outer padded keys of HMAC-SHA256 under salted_hmac's key for HASH_SALT and `secret`."""
    key = hashlib.sha256(force_bytes(HASH_SALT) + force_bytes(secret)).digest().ljust(64, b"\0")  # a block
    return bytes(byte ^ 0x36 for byte in key), bytes(byte ^ 0x5C for byte in key)


def erased_addresses(*, owner, addresses) -> set[str]:
    """Those of `addresses` (normalised) that the owner erased while suppressed."""
    addresses = list(addresses)
    if not addresses or not SuppressedHash.objects.filter(owner=owner).exists():
        return set()
    by_hash = {digest: address for address in addresses for digest in _hashes(address)}
    found = SuppressedHash.objects.filter(owner=owner, address_hash__in=list(by_hash)).values_list(
        "address_hash", flat=True
    )
    return {by_hash[digest] for digest in found}


def erased_reason(*, owner, address: str) -> str | None:
    """The suppressed status an erased address had (unsubscribed, bounced, complained), or None."""
    return (
        SuppressedHash.objects.filter(owner=owner, address_hash__in=_hashes(address))
        .values_list("reason", flat=True)
        .first()
    )


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
            "id": contact.pk, "email": contact.email, "name": contact.name,
            "created_at": _iso(contact.created_at), "updated_at": _iso(contact.updated_at),
        },
        "consent": {"status": contact.status, "status_changed_at": _iso(contact.status_changed_at)},
        "attributes": dict(contact.attributes or {}),
        "lists": [contact_list.name for contact_list in own_lists],
        "emails": [_email_dict(email) for email in emails],
        "events": [_event_dict(event) for event in events],
    }


def _email_dict(email):
    return {
        "campaign": email.campaign.name, "subject": email.campaign.subject, "to_email": email.to_email,
        "to_name": email.to_name, "status": email.status, "sent_at": _iso(email.sent_at),
        "smtp_code": email.smtp_code, "smtp_response": email.smtp_response,
        "first_opened_at": _iso(email.first_opened_at), "open_count": email.open_count,
        "machine_open": email.machine_open, "first_clicked_at": _iso(email.first_clicked_at),
        "click_count": email.click_count, "unsubscribed_at": _iso(email.unsubscribed_at),
    }


def _event_dict(event):
    return {
        "campaign": event.campaign.name, "kind": event.kind, "at": _iso(event.at),
        "link": event.link.url if event.link_id else "", "user_agent": event.user_agent,
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
