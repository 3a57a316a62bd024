"""Reads for personalisation: which variables the recipients of a campaign can fill."""

from django.db import connection
from django.db.models import QuerySet

from campaigns import personalize
from campaigns.models import Campaign, Contact


def subscribed_contacts(*, campaign: Campaign) -> QuerySet[Contact]:
    """Subscribed contacts of the campaign's lists (the owner's own lists and contacts only)."""
    return (
        Contact.objects.filter(
            owner_id=campaign.owner_id,
            status=Contact.Status.SUBSCRIBED,
            lists__campaigns=campaign,
            lists__owner_id=campaign.owner_id,
        )
        .distinct()
        .order_by("email")
    )


def attribute_keys(*, campaign: Campaign) -> set[str]:
    """Every attribute key any recipient of the campaign has, in one query."""
    ids_sql, params = subscribed_contacts(campaign=campaign).order_by().values("id").query.sql_with_params()
    table = Contact._meta.db_table
    if connection.vendor == "postgresql":
        sql = (
            f"SELECT DISTINCT jsonb_object_keys(c.attributes) FROM {table} c "
            f"WHERE c.id IN ({ids_sql}) AND jsonb_typeof(c.attributes) = 'object'"
        )
    else:
        sql = (
            f"SELECT DISTINCT j.key FROM {table} c, json_each(c.attributes) j "
            f"WHERE c.id IN ({ids_sql}) AND json_type(c.attributes) = 'object'"
        )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return {row[0] for row in cursor.fetchall()}


def variables_no_recipient_has(*, campaign: Campaign) -> list[str]:
    """Variables the subject or bodies use that no recipient of the chosen lists can fill (sorted)."""
    used = set()
    for source in (campaign.subject, campaign.body_html, campaign.body_text):
        try:
            used |= personalize.variables_used(source or "")
        except personalize.PersonalizationError:
            continue
    used -= set(personalize.STANDARD_VARIABLES)
    if not used:
        return []
    return sorted(used - personalize.attribute_identifiers(attribute_keys(campaign=campaign)))
