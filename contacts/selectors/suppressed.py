"""The hashes of addresses a marketer erased while suppressed (SuppressedHash): made, matched, and
matched inside SQL, so that no import, contact or campaign start brings such an address back."""

import hashlib

from django.conf import settings
from django.utils.crypto import salted_hmac
from django.utils.encoding import force_bytes

from contacts.addresses import normalize_address, normalized_address_sql
from contacts.models import SuppressedHash

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
    sql = (
        f"EXISTS (SELECT 1 FROM {SuppressedHash._meta.db_table} erased WHERE erased.owner_id = {owner_column} "
        f"AND erased.address_hash IN ({', '.join(hashes)}))"
    )
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
