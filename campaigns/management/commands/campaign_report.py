"""manage.py campaign_report ID [--format csv|json]: a campaign's per-recipient results on stdout."""

import csv
import json

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from campaigns.models import Campaign
from campaigns.resources import CampaignResultResource
from contacts.exports import escape_cell
from reporting.selectors.dashboard import user_zone


class Command(BaseCommand):
    help = (
        "Write a campaign's per-recipient results "
        "(address, status, sent time, SMTP answer, opens, clicks, unsubscribe, later bounce or complaint)."
    )

    def add_arguments(self, parser):
        parser.add_argument("campaign_id", type=int)
        parser.add_argument("--format", choices=["csv", "json"], default="csv")

    def handle(self, *args, campaign_id, format, **options):
        campaigns = Campaign.objects.filter(pk=campaign_id).select_related("owner")
        campaign = campaigns.first()
        if campaign is None:
            raise CommandError(f"No campaign with id {campaign_id}.")
        # Times in the owner's zone, as the admin and its export show them to the owner (not UTC).
        with timezone.override(user_zone(campaign.owner)):
            self._write(campaigns, format)

    def _write(self, campaigns, format):
        resource = CampaignResultResource()
        if format == "json":
            self.stdout.write(json.dumps(resource.result_dicts(campaigns=campaigns), ensure_ascii=False, indent=1))
            return
        headers, rows = resource.results(campaigns=campaigns)
        writer = csv.writer(self.stdout, lineterminator="\n")
        writer.writerow(headers)
        for row in rows:
            writer.writerow([escape_cell(cell) for cell in row])
