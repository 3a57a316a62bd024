from django.core.management.base import BaseCommand

from campaigns import tasks
from campaigns.delivery import dispatcher


class Command(BaseCommand):
    help = "Run one dispatcher tick by hand (batches go to the Celery workers)."

    def handle(self, *args, **options):
        report = dispatcher.tick(enqueue=tasks.enqueue_batch)
        if not report.ran:
            self.stdout.write("Another tick is running; nothing done.")
            return
        self.stdout.write(
            f"Started {len(report.started)} campaign(s), returned {report.returned} row(s) to pending, "
            f"claimed {report.claimed} email(s) in {len(report.batches)} batch(es), completed {report.completed}."
        )
