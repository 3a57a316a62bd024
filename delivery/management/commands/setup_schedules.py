from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from delivery.dispatcher import DISPATCH_TASK_NAME

BOUNCE_READ_TASK_NAME = "Read bounce mailboxes"
IMPORT_CLEANUP_TASK_NAME = "Delete stale import files"
IMPORT_CLEANUP_SECONDS = 300


class Command(BaseCommand):
    help = (
        "Create the dispatcher's periodic task (every 10 s), the import files' cleanup (every 5 min) and the "
        "bounce mailboxes' read (every minute). "
        "Idempotent; never overwrites an edited interval."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        self._schedule(
            name=DISPATCH_TASK_NAME,
            label="Dispatcher",
            task="campaigns.dispatch",
            every=settings.DISPATCH_INTERVAL_SECONDS,
            description="Starts due campaigns, returns retries, claims batches within each account's limits.",
            # A tick that waited in the queue longer than one interval is dropped: the next one does its work.
            expire_seconds=settings.DISPATCH_INTERVAL_SECONDS,
        )
        self._schedule(
            name=IMPORT_CLEANUP_TASK_NAME,
            label="Import files' cleanup",
            task="campaigns.delete_stale_import_files",
            every=IMPORT_CLEANUP_SECONDS,
            description="Deletes uploaded contact files of imports ended or never confirmed "
            "(IMPORT_UNCONFIRMED_FILE_HOURS), and fails previews stopped by their time limit.",
            expire_seconds=IMPORT_CLEANUP_SECONDS,
        )
        self._schedule(
            name=BOUNCE_READ_TASK_NAME,
            label="Bounce mailboxes' read",
            task="bounces.read_mailboxes",
            every=settings.BOUNCE_READ_INTERVAL_SECONDS,
            description="Reads every enabled bounce mailbox: DSNs, complaints and unsubscribe mails are acted "
            "on, then removed (manage.py process_bounces does it at once).",
            expire_seconds=settings.BOUNCE_READ_INTERVAL_SECONDS,
        )

    def _schedule(self, *, name: str, label: str, task: str, every: int, description: str, expire_seconds: int) -> None:
        existing = PeriodicTask.objects.filter(name=name).first()
        if existing is not None:
            self.stdout.write(f"{label} schedule exists: {existing.interval or existing.crontab}; left as it is.")
            return
        interval, _ = IntervalSchedule.objects.get_or_create(every=every, period=IntervalSchedule.SECONDS)
        PeriodicTask.objects.create(
            name=name, task=task, interval=interval, description=description, expire_seconds=expire_seconds
        )
        self.stdout.write(self.style.SUCCESS(f"{label} scheduled every {interval.every} seconds."))
