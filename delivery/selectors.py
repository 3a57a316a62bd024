"""What an SMTP account sent lately: the one reading of its sent rows that its limits, its fair
share and its adaptive rate are each worked out from.

On the partial (campaign, sent_at) index of sent rows: the window read is always short (a minute,
a dispatch interval) or bounded by the account's own limit (see rate_limit._left_within_limits).
"""

from datetime import datetime

from django.db.models import QuerySet

from campaigns.models import Email


def sent_by_account(*, account_id: int, after: datetime, until: datetime | None = None) -> QuerySet[Email]:
    """The account's sent rows accepted after `after` (and at or before `until`, when given)."""
    rows = Email.objects.filter(campaign__smtp_account_id=account_id, status=Email.Status.SENT, sent_at__gt=after)
    return rows if until is None else rows.filter(sent_at__lte=until)
