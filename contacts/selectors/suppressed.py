from django.conf import settings
from django.utils.crypto import salted_hmac
from contacts.addresses import normalize_address
from contacts.models import SuppressedHash


HASH_SALT = "campaigns.SuppressedHash.address"


def address_hash(address: str, *, secret: str | None = None) -> str:
    """HMAC-SHA256 of the normalised address, keyed from SECRET_KEY: matched, never reversed."""
    return salted_hmac(HASH_SALT, normalize_address(address), secret=secret, algorithm="sha256").hexdigest()


def _hashes(address):
    # Hashes made under a key since rotated into SECRET_KEY_FALLBACKS still match.
    secrets = [settings.SECRET_KEY, *getattr(settings, "SECRET_KEY_FALLBACKS", [])]
    return [address_hash(address, secret=secret) for secret in secrets]


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
