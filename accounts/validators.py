from django.core.exceptions import ValidationError


def validate_no_header_breaks(value):
    """Refuse CR and LF in anything that may end up in a mail header."""
    if value and ("\r" in value or "\n" in value):
        raise ValidationError("Line breaks are not allowed here.", code="header_break")
