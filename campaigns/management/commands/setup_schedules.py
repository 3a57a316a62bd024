from django.conf import settings
from django.core.management.base import BaseCommand
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from campaigns.delivery.dispatcher import DISPATCH_TASK_NAME


class Command(BaseCommand):
    help = "Create the dispatcher's periodic task (every 10 s). Idempotent; never overwrites an edited interval."

    def handle(self, *args, **options):
        task = PeriodicTask.objects.filter(name=DISPATCH_TASK_NAME).first()
        if task is not None:
            self.stdout.write(f"Dispatcher schedule exists: {task.interval or task.crontab}; left as it is.")
            return
        interval, _ = IntervalSchedule.objects.get_or_create(
            every=settings.DISPATCH_INTERVAL_SECONDS, period=IntervalSchedule.SECONDS
        )
        PeriodicTask.objects.create(
            name=DISPATCH_TASK_NAME,
            task="campaigns.dispatch",
            interval=interval,
            description="Starts due campaigns, returns retries, claims batches within each account's limits.",
            # A tick that waited in the queue longer than one interval is dropped: the next one does its work.
            expire_seconds=settings.DISPATCH_INTERVAL_SECONDS,
        )
        self.stdout.write(self.style.SUCCESS(f"Dispatcher scheduled every {interval.every} seconds."))
