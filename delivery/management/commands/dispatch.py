from typing import Any

from django.core.management.base import BaseCommand

from campaigns.models import Campaign
from campaigns.selectors import audience
from delivery import dispatcher, tasks


class Command(BaseCommand):
    help = "Run one dispatcher tick by hand (batches go to the Celery workers)."

    def handle(self, *args: Any, **options: Any) -> None:
        report = dispatcher.tick(enqueue=tasks.enqueue_batch)
        if not report.ran:
            self.stdout.write("Another tick is running; nothing done.")
            return
        self.stdout.write(
            f"Started {len(report.started)} campaign(s), wrote {report.prepared} recipient(s), returned "
            f"{report.returned} row(s) to pending, claimed {report.claimed} email(s) in {len(report.batches)} "
            f"batch(es), completed {report.completed}."
        )
        for campaign in Campaign.objects.filter(recipients_cursor__isnull=False).order_by("pk"):
            progress = audience.describe_preparation(audience.preparation_progress(campaign=campaign))
            self.stdout.write(f"Campaign {campaign.pk} ({campaign.name}): {progress}.")
