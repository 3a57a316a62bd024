import logging

from celery import shared_task
from django.conf import settings

from contacts.imports import jobs
from contacts.services import subscriptions

log = logging.getLogger(__name__)


@shared_task(name="campaigns.import_contacts", ignore_result=True)
def import_contacts(job_id):
    result = jobs.run(job_id=job_id)
    if result is not None:
        log.info("import job %s: %s in %s row(s)", job_id, result.counts, result.processed_rows)


# Out of the web request: a slow SMTP server must not hold the public form's page.
@shared_task(name="campaigns.send_subscription_confirmation", ignore_result=True)
def send_subscription_confirmation(request_id):
    subscriptions.send_confirmation(request_id=request_id)


# The preview reads the whole file: its time limit bounds what any upload can cost a worker. A file
# still being read at the soft limit is refused with a reason. The hard limit ends a reading that
# ignores it (the periodic cleanup fails that job, jobs.delete_stale_uploads); a worker lost while
# reading gets the task back, and read_preview fails the job rather than read the file again.
@shared_task(
    name="campaigns.preview_import",
    ignore_result=True,
    soft_time_limit=settings.IMPORT_PREVIEW_TIME_LIMIT_SECONDS,
    time_limit=settings.IMPORT_PREVIEW_TIME_LIMIT_SECONDS + 30,
)
def preview_import(job_id):
    result = jobs.read_preview(job_id=job_id)
    if result is not None:
        log.info("import job %s previewed: %s in %s row(s)", job_id, result.counts, result.processed_rows)


@shared_task(name="campaigns.delete_stale_import_files", ignore_result=True)
def delete_stale_import_files():
    deleted = jobs.delete_stale_uploads()
    if deleted:
        log.info("deleted the uploaded files of %s import job(s)", deleted)
