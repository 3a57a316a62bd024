"""Addresses as they go on the wire."""


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
