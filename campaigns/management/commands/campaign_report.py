"""manage.py campaign_report ID [--format csv|json] [--tz ZONE]: a campaign's per-recipient results on stdout.

Times are written in the campaign owner's time zone (the zone the admin shows them in), with their
offset, unless --tz names another. Piped into a command that stops reading early (`| head`), it stops
quietly.
"""

import csv
import json
import os
import sys
import zoneinfo

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from campaigns.models import Campaign
from campaigns.resources import CampaignResultResource
from contacts.exports import escape_cell


class Command(BaseCommand):
    help = (
        "Write a campaign's per-recipient results "
        "(address, status, sent time, SMTP answer, opens, clicks, unsubscribe, later bounce or complaint). "
        "Times are in the campaign owner's time zone unless --tz names another."
    )

    def add_arguments(self, parser):
        parser.add_argument("campaign_id", type=int)
        parser.add_argument("--format", choices=["csv", "json"], default="csv")
        parser.add_argument(
            "--tz",
            default="",
            help="An IANA time zone for the times (e.g. UTC, Europe/Paris); default: the campaign owner's.",
        )

    def handle(self, *args, campaign_id, format, tz, **options):
        campaigns = Campaign.objects.filter(pk=campaign_id)
        campaign = campaigns.select_related("owner").first()
        if campaign is None:
            raise CommandError(f"No campaign with id {campaign_id}.")
        zone = _zone(tz or campaign.owner.timezone)
        try:
            with timezone.override(zone):
                self._write(campaigns, format)
        except BrokenPipeError:
            self._stop_quietly()

    def _write(self, campaigns, file_format):
        resource = CampaignResultResource()
        if file_format == "json":
            self.stdout.write(json.dumps(resource.result_dicts(campaigns=campaigns), ensure_ascii=False, indent=1))
            return
        headers, rows = resource.results(campaigns=campaigns)
        writer = csv.writer(self.stdout, lineterminator="\n")
        writer.writerow(headers)
        for row in rows:
            writer.writerow([escape_cell(cell) for cell in row])

    def _stop_quietly(self):
        # The reader is gone: what is still buffered would raise again when Python flushes it at exit,
        # so the output is pointed at the null device (the recipe of Python's signal documentation).
        try:
            target = self.stdout._out.fileno()
        except (AttributeError, OSError, ValueError):
            target = sys.stdout.fileno()
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, target)
        os.close(devnull)


def _zone(name):
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise CommandError(f"Unknown time zone {name!r}: give an IANA name such as UTC or Europe/Paris.") from None
