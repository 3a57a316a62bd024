"""Reads of the tracking endpoints."""

from campaigns.models import Email


def click_target(*, email_id: int, link_id: int) -> str | None:
    """The URL of a stored Link of this email's campaign, or None (another campaign's link, or
    the email gone)."""
    return (
        Email.objects.filter(pk=email_id, campaign__links__pk=link_id)
        .values_list("campaign__links__url", flat=True)
        .first()
    )
