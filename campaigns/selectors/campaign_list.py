"""Reads for the campaign changelist."""

from django.db.models import BigIntegerField, OuterRef, QuerySet, Subquery, Sum, Value
from django.db.models.functions import Cast, Coalesce

from campaigns.models import Campaign, CampaignTally, Email


def _tally_sum(**tally_filters) -> Coalesce:
    """The campaign's emails counted by its tally rows matching `tally_filters` (0 without any)."""
    tallies = CampaignTally.objects.filter(campaign=OuterRef("pk"), **tally_filters).order_by().values("campaign")
    # (A sum of bigints is a numeric in PostgreSQL: cast back to an integer.)
    total = tallies.annotate(total=Cast(Sum("n"), BigIntegerField())).values("total")
    return Coalesce(Subquery(total), Value(0), output_field=BigIntegerField())


def with_email_counts(*, campaigns: QuerySet[Campaign]) -> QuerySet[Campaign]:
    """`campaigns` with recipient_count, sent_count and failed_count from the tallies (a few rows per
    campaign, whatever its size), sortable like any column."""
    return campaigns.annotate(
        recipient_count=_tally_sum(),
        sent_count=_tally_sum(status=Email.Status.SENT),
        failed_count=_tally_sum(status=Email.Status.FAILED),
    )
