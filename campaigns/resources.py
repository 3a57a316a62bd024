"""Export column definitions (django-import-export resources): a campaign's per-recipient results.

Nothing is imported through them; they define what the exports contain. Values are plain text
or numbers; contacts.exports escapes formula-like cells when it writes CSV or XLSX.
"""

from import_export import fields, resources

from campaigns.models import Email
from contacts.resources import iso


class CampaignResultResource(resources.Resource):
    """One row per recipient of a campaign: what happened to its email."""

    campaign = fields.Field(column_name="campaign", attribute="campaign__name")
    address = fields.Field(column_name="address", attribute="to_email")
    name = fields.Field(column_name="name", attribute="to_name")
    status = fields.Field(column_name="status", attribute="status")
    attempts = fields.Field(column_name="attempts", attribute="attempts")
    sent_at = fields.Field(column_name="sent_at")
    smtp_code = fields.Field(column_name="smtp_code")
    smtp_response = fields.Field(column_name="smtp_response", attribute="smtp_response")
    first_opened_at = fields.Field(column_name="first_opened_at")
    open_count = fields.Field(column_name="open_count", attribute="open_count")
    first_clicked_at = fields.Field(column_name="first_clicked_at")
    click_count = fields.Field(column_name="click_count", attribute="click_count")
    unsubscribed_at = fields.Field(column_name="unsubscribed_at")
    # The recipient may have this message twice (see Email.possible_duplicate).
    possible_duplicate = fields.Field(column_name="possible_duplicate", attribute="possible_duplicate")
    # What a delivery report said after the server's 250 (bounces.services).
    bounced_at = fields.Field(column_name="bounced_at")
    bounce_kind = fields.Field(column_name="bounce_kind", attribute="bounce_kind")
    bounce_status = fields.Field(column_name="bounce_status", attribute="bounce_status")
    bounce_text = fields.Field(column_name="bounce_text", attribute="bounce_text")
    complained_at = fields.Field(column_name="complained_at")

    class Meta:
        fields = (
            "campaign",
            "address",
            "name",
            "status",
            "attempts",
            "sent_at",
            "smtp_code",
            "smtp_response",
            "first_opened_at",
            "open_count",
            "first_clicked_at",
            "click_count",
            "unsubscribed_at",
            "possible_duplicate",
            "bounced_at",
            "bounce_kind",
            "bounce_status",
            "bounce_text",
            "complained_at",
        )

    def dehydrate_bounced_at(self, email):
        return iso(email.bounced_at)

    def dehydrate_complained_at(self, email):
        return iso(email.complained_at)

    def dehydrate_sent_at(self, email):
        return iso(email.sent_at)

    def dehydrate_first_opened_at(self, email):
        return iso(email.first_opened_at)

    def dehydrate_first_clicked_at(self, email):
        return iso(email.first_clicked_at)

    def dehydrate_unsubscribed_at(self, email):
        return iso(email.unsubscribed_at)

    def dehydrate_smtp_code(self, email):
        return email.smtp_code if email.smtp_code is not None else ""

    def results(self, *, campaigns):
        """(headers, rows) for the recipients of `campaigns` (an owner-scoped queryset)."""
        emails = Email.objects.filter(campaign__in=campaigns).select_related("campaign").order_by("campaign_id", "id")
        dataset = self.export(queryset=emails)
        return list(dataset.headers), [list(row) for row in dataset]

    def result_dicts(self, *, campaigns):
        """The same columns as JSON values: counts and codes as numbers, a missing date or code as null (the
        spreadsheet export renders every cell as text)."""
        emails = (
            Email.objects.filter(campaign__in=campaigns)
            .order_by("campaign_id", "id")
            .values(
                "campaign__name",
                "to_email",
                "to_name",
                "status",
                "attempts",
                "sent_at",
                "smtp_code",
                "smtp_response",
                "first_opened_at",
                "open_count",
                "first_clicked_at",
                "click_count",
                "unsubscribed_at",
                "possible_duplicate",
                "bounced_at",
                "bounce_kind",
                "bounce_status",
                "bounce_text",
                "complained_at",
            )
        )
        return [
            {
                "campaign": e["campaign__name"],
                "address": e["to_email"],
                "name": e["to_name"],
                "status": e["status"],
                "attempts": e["attempts"],
                "sent_at": iso(e["sent_at"]) or None,
                "smtp_code": e["smtp_code"],
                "smtp_response": e["smtp_response"],
                "first_opened_at": iso(e["first_opened_at"]) or None,
                "open_count": e["open_count"],
                "first_clicked_at": iso(e["first_clicked_at"]) or None,
                "click_count": e["click_count"],
                "unsubscribed_at": iso(e["unsubscribed_at"]) or None,
                "possible_duplicate": e["possible_duplicate"],
                "bounced_at": iso(e["bounced_at"]) or None,
                "bounce_kind": e["bounce_kind"],
                "bounce_status": e["bounce_status"],
                "bounce_text": e["bounce_text"],
                "complained_at": iso(e["complained_at"]) or None,
            }
            for e in emails
        ]
