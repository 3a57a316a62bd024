"""What a contact address is.

Rule: an address is `local@domain`, at most 254 characters, trimmed, NFC-normalised
and lower-cased. The domain must have a dot (no `x@localhost` in a mailing list) and pass Django's EmailValidator
(international
domains are checked in their punycode form). The local part must pass the same
validator once every non-ASCII letter, mark or digit in it is stood in for by an
ASCII letter: letters of any script are accepted (RFC 6531, SMTPUTF8, which our
sender negotiates), punctuation follows the ASCII rules. So `zoë.müller@example.de`
and `李雷@example.cn` are accepted, `=HYPERLINK(...)@example.com` is not.
"""

import functools
import re
import unicodedata

from django import forms
from django.core.exceptions import ValidationError
from django.core.validators import EmailValidator
from django.db import models

MAX_LENGTH = 254
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")

_django_validator = EmailValidator()
# Characters that spreadsheets and CRMs leave around addresses.
STRIPPED = " \t\r\n\u00a0\u200b\u200c\u200d\ufeff"


def normalize_address(raw: object) -> str:
    """Trimmed, NFC, lower-cased: the form in which addresses are stored and compared."""
    text = str(raw or "").strip(STRIPPED)
    # ASCII text is NFC already: skip unicodedata's pass for (nearly) every row of an import.
    if not text.isascii():
        text = unicodedata.normalize("NFC", text)
    return text.lower()


def normalized_address_sql(column):
    """normalize_address over a text column, in PostgreSQL: (SQL, params).

    The same text as Python's for every address but those holding one of the few capitals whose lower
    case Unicode gives by context or as two characters (İ, a final Σ), which the server's collation may
    lower otherwise; a stored address is lower case already, and lower() leaves it as it is. ASCII skips
    normalize() as above (what is ASCII before trimming is after), which would cost more than the rest of
    the expression."""
    trimmed = f"btrim({column}, %s)"
    return (
        f"lower(CASE WHEN octet_length({column}) = char_length({column}) THEN {trimmed} "
        f"ELSE normalize({trimmed}, NFC) END)",
        [STRIPPED, STRIPPED],
    )


# Django's own rule for the local part, compiled once (its validator's lazy regex is slow per call).
_LOCAL_RE = re.compile(_django_validator.user_regex.pattern, _django_validator.user_regex.flags)

# The everyday address in one pass: a lower-case ASCII dot-atom local part (the dot-atom branch of
# Django's user_regex, not starting with "=") and a domain of dot-separated labels. Whatever it
# matches passes every check of address_problem() before the domain's (a dot-atom holds no "@",
# the domain has an inner dot), so only the domain is left to check; anything else (quotes,
# non-ASCII letters, odd domains, errors) takes the full path below.
_COMMON_ADDRESS_RE = re.compile(
    r"(?!=)[-!#$%&'*+/=?^_`{}|~0-9a-z]+(?:\.[-!#$%&'*+/=?^_`{}|~0-9a-z]+)*"
    r"@([0-9a-z-]+(?:\.[0-9a-z-]+)+)"
)


@functools.lru_cache(maxsize=8192)
def _domain_ok(domain):
    """Domains repeat across a file: check each once, with Django's validator."""
    try:
        _django_validator(f"a@{domain}")
    except ValidationError:
        return False
    return True


def _ascii_stand_in(local):
    if local.isascii():
        return local
    out = []
    for char in local:
        if char.isascii():
            out.append(char)
        elif unicodedata.category(char)[0] in "LMN":
            out.append("a")
        else:
            return None
    return "".join(out)


def address_problem(address: str) -> str | None:
    """Why `address` (already normalised) is not a usable address, or None if it is."""
    common = _COMMON_ADDRESS_RE.fullmatch(address)
    if common is not None and len(address) <= MAX_LENGTH:
        return None if _domain_ok(common[1]) else "not a valid address"
    if not address:
        return "no address"
    if address.startswith("="):
        return "not an address: it looks like a spreadsheet formula"
    if len(address) > MAX_LENGTH:
        return f"address longer than {MAX_LENGTH} characters"
    if address.count("@") != 1:
        return "not a valid address: it needs exactly one @"
    local, domain = address.split("@")
    stand_in = _ascii_stand_in(local)
    if not local or not domain or stand_in is None:
        return "not a valid address"
    if "." not in domain.strip("."):
        return "not a valid address: the domain has no dot"
    if not _LOCAL_RE.match(stand_in) or not _domain_ok(domain):
        return "not a valid address"
    return None


def validate_contact_email(value: object) -> None:
    problem = address_problem(normalize_address(value))
    if problem:
        raise ValidationError(f"Enter a valid email address ({problem}).", code="invalid")


class ContactEmailFormField(forms.EmailField):
    default_validators = [validate_contact_email]


class ContactEmailField(models.EmailField):
    """An EmailField that accepts internationalised local parts (see the module's rule)."""

    default_validators = [validate_contact_email]

    def formfield(self, **kwargs):
        return super().formfield(**{"form_class": ContactEmailFormField, **kwargs})
