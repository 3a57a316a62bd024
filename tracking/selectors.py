"""Reads of the tracking endpoints."""

from campaigns.models import Email


def click_target(*, email_id: int, link_id: int, account_id: int | None = None) -> str | None:
    """The URL of a stored Link of this email's campaign, or None (another campaign's link, the email
    gone, or another account's email on an account's tracking domain)."""
    emails = Email.objects.filter(pk=email_id, campaign__links__pk=link_id)
    if account_id is not None:  # on an account's tracking domain (tracking.services.served_on)
        emails = emails.filter(campaign__smtp_account_id=account_id)
    return emails.values_list("campaign__links__url", flat=True).first()
