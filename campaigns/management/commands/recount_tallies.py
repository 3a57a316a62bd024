from django.core.management.base import BaseCommand
from django.db import transaction

from campaigns import tallies
from campaigns.models import CampaignHourTally, CampaignTally


class Command(BaseCommand):
    help = (
        "Rebuild the dashboards' tallies from the Email rows, in one transaction (safe at any time: "
        "writers to the email table wait until it is done), and re-install the triggers that keep them."
    )

    def handle(self, *args, **options):
        with transaction.atomic():
            tallies.install()
            tallies.recount()
        self.stdout.write(
            f"Recounted: {CampaignTally.objects.count()} tally row(s), {CampaignHourTally.objects.count()} hour row(s)."
        )
