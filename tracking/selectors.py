"""Reads of the tracking endpoints."""

from campaigns.models import Email


def served_on(account_id: int | None) -> dict[str, int]:
    """The lookups that keep a request on an account's tracking domain to that account's emails
    (none on the site's own host)."""
    return {} if account_id is None else {"campaign__smtp_account_id": account_id}


def click_target(*, email_id: int, link_id: int, account_id: int | None = None) -> str | None:
    """The URL of a stored Link of this email's campaign, or None (another campaign's link, the email
    gone, or another account's email on an account's tracking domain)."""
    return (
        Email.objects.filter(pk=email_id, campaign__links__pk=link_id, **served_on(account_id))
        .values_list("campaign__links__url", flat=True)
        .first()
    )
