"""manage.py campaign_report ID [--format csv|json]: a campaign's per-recipient results on stdout."""

import csv
import json

from django.core.management.base import BaseCommand, CommandError

from campaigns.models import Campaign
from campaigns.resources import CampaignResultResource
from contacts.exports import escape_cell


class Command(BaseCommand):
    help = (
        "Write a campaign's per-recipient results "
        "(address, status, sent time, SMTP answer, opens, clicks, unsubscribe, later bounce or complaint)."
    )

    def add_arguments(self, parser):
        parser.add_argument("campaign_id", type=int)
        parser.add_argument("--format", choices=["csv", "json"], default="csv")

    def handle(self, *args, campaign_id, format, **options):
        campaigns = Campaign.objects.filter(pk=campaign_id)
        if not campaigns.exists():
            raise CommandError(f"No campaign with id {campaign_id}.")
        resource = CampaignResultResource()
        if format == "json":
            self.stdout.write(json.dumps(resource.result_dicts(campaigns=campaigns), ensure_ascii=False, indent=1))
            return
        headers, rows = resource.results(campaigns=campaigns)
        writer = csv.writer(self.stdout, lineterminator="\n")
        writer.writerow(headers)
        for row in rows:
            writer.writerow([escape_cell(cell) for cell in row])
