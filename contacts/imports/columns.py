"""Headers to meaning: which column holds the address, which the name, and the rest as attributes.

Headers are compared without case, spaces, dashes, dots or underscores, so
"Email Address", "E-mail", "email_address" and " EMAIL " are one and the same.
"""

import re
from dataclasses import dataclass, field

from contacts.imports.reader import FileRefused

ADDRESS_HEADERS = {
    "email",
    "emailaddress",
    "mail",
    "emailid",
    "mailaddress",
    "emails",
    "emailaddr",
    "eaddress",
    "primaryemail",
    "emailadresse",
    "correo",
    "correoelectronico",
    "courriel",
}
NAME_HEADERS = {"name", "fullname", "contactname", "displayname", "yourname", "nombre", "nom"}
FIRST_NAME_HEADERS = {"firstname", "first", "givenname", "forename", "fname", "vorname", "prenom"}
LAST_NAME_HEADERS = {"lastname", "last", "surname", "familyname", "lname", "nachname"}
MAX_ATTRIBUTE_KEY = 100


def header_key(header):
    return re.sub(r"[\s\-_.:/]+", "", str(header or "")).casefold()


@dataclass
class ColumnMap:
    address: int
    name: int | None = None
    first_name: int | None = None
    last_name: int | None = None
    # (column index, attribute key) for every other column.
    attributes: list = field(default_factory=list)
    headers: list = field(default_factory=list)

    def describe(self):
        """[(header, meaning)] for the preview page."""
        meaning = {self.address: "address"}
        if self.name is not None:
            meaning[self.name] = "name"
        if self.first_name is not None:
            meaning[self.first_name] = "name (first part)"
        if self.last_name is not None:
            meaning[self.last_name] = "name (last part)"
        for index, key in self.attributes:
            meaning[index] = f"attribute “{key}”"
        return [(self.headers[i] if i < len(self.headers) else "", meaning[i]) for i in sorted(meaning)]


def map_columns(headers):
    headers = [str(h or "").strip(" \t\r\n\ufeff\u00a0") for h in headers]
    keys = [header_key(h) for h in headers]

    def first(candidates):
        return next((i for i, k in enumerate(keys) if k in candidates), None)

    address = first(ADDRESS_HEADERS)
    if address is None:
        # "Work email", "E-mail (primary)": any header that mentions mail, but only one.
        mentions = [i for i, k in enumerate(keys) if "email" in k or k.endswith("mail")]
        address = mentions[0] if len(mentions) == 1 else None
    if address is None:
        found = ", ".join(f"“{h}”" for h in headers if h) or "none"
        raise FileRefused(
            f"No address column found. Columns in the file: {found}. "
            "Name the column with the addresses Email, E-mail or Email Address."
        )
    columns = ColumnMap(address=address, headers=headers)
    columns.name = first(NAME_HEADERS)
    if columns.name is None:
        columns.first_name = first(FIRST_NAME_HEADERS)
        columns.last_name = first(LAST_NAME_HEADERS)
    used = {address, columns.name, columns.first_name, columns.last_name}
    taken = set()
    for index, header in enumerate(headers):
        if index in used:
            continue
        key = (header or f"Column {index + 1}")[:MAX_ATTRIBUTE_KEY]
        base, n = key, 2
        while key.casefold() in taken or header_key(key) in ("name", "email"):
            key = f"{base} ({n})"
            n += 1
        taken.add(key.casefold())
        columns.attributes.append((index, key))
    return columns
