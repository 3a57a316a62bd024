"""Addresses as they go on the wire."""

import re

from django.conf import settings


def transport_address(address: str) -> str:
    """The address as it goes on the wire: an internationalised domain in its ASCII (IDNA) form,
    so an ASCII local part at `bücher.example` needs no SMTPUTF8; a non-ASCII local part stays as it
    is (only SMTPUTF8 can carry it). Raises UnicodeError for a domain IDNA cannot encode."""
    if address.isascii():
        return address
    local, _, domain = address.rpartition("@")
    if domain and not domain.isascii():
        domain = domain.encode("idna").decode("ascii")
    return f"{local}@{domain}"


_HOST_NAME = re.compile(r"[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)*")


def sender_domain(from_email: str) -> str:
    """The domain of a From address as it goes on the wire (IDNA, lower case): the account's
    Message-IDs and List-Ids are made in it, so they name the sender's domain, not the site's.
    An address without a host name (an IP literal, a domain IDNA cannot encode) gets
    MESSAGE_ID_DOMAIN instead."""
    domain = from_email.rpartition("@")[2].strip().lower()
    try:
        domain = transport_address(f"x@{domain}").rpartition("@")[2]
    except UnicodeError:
        domain = ""
    if domain and _HOST_NAME.fullmatch(domain):
        return domain
    fallback: str = settings.MESSAGE_ID_DOMAIN or "localhost"
    return fallback
