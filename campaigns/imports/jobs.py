"""Import jobs: upload and preview (dry run), confirm, run (in the request or a Celery task), report.

Every status change is one conditional UPDATE, so a double click on "Confirm"
or a redelivered task never runs an import twice.
"""

import logging
import os

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from campaigns.imports import service
from campaigns.imports.reader import FileRefused

log = logging.getLogger(__name__)

PREVIEW_ROWS = 100


class ImportRefused(Exception):
    """Shown to the marketer as it is."""


def check_upload_size(*, size):
    limit = settings.IMPORT_MAX_UPLOAD_BYTES
    if size > limit:
        raise ImportRefused(
            f"The file is {size / 2**20:.1f} MB; the limit is {limit / 2**20:.0f} MB. "
            "Split it into smaller files."
        )


def create_job(*, owner, uploaded_file, contact_list=None, new_list_name="", encoding=""):
    """Store the upload and run the dry run; returns the previewed ImportJob. Writes no contact."""
    from campaigns.models import ImportJob

    check_upload_size(size=uploaded_file.size)
    if contact_list is not None and contact_list.owner_id != owner.pk:
        raise ImportRefused("No such list.")
    job = ImportJob(
        owner=owner, contact_list=contact_list, new_list_name=new_list_name.strip() if contact_list is None else "",
        original_name=os.path.basename(uploaded_file.name)[:255], encoding=encoding,
    )
    job.file.save(uploaded_file.name, uploaded_file, save=False)
    try:
        result = service.import_file(
            owner=owner, path=job.file.path, filename=job.original_name, encoding=encoding, dry_run=True,
            keep_outcomes=PREVIEW_ROWS, max_rows=settings.IMPORT_MAX_ROWS,
        )
    except FileRefused as exc:
        job.file.delete(save=False)
        raise ImportRefused(str(exc)) from None
    job.total_rows = result.processed_rows
    job.file_description = result.file_description
    job.preview = {
        "counts": result.counts,
        "blank_rows": result.blank_rows,
        "columns": result.columns,
        "rows": [o.as_dict() for o in result.outcomes],
    }
    job.rejected_rows = result.rejected
    job.save()
    return job


def runs_in_background(job):
    return job.total_rows > settings.IMPORT_SYNC_MAX_ROWS


def confirm(*, job, enqueue=None):
    """Start the import the preview showed. Small files run now; large ones go to Celery.

    Returns True if this call started it (False: confirmed already, or cancelled).
    """
    from campaigns.models import ContactList, ImportJob

    background = runs_in_background(job)
    with transaction.atomic():
        claimed = ImportJob.objects.filter(pk=job.pk, status=ImportJob.Status.PREVIEWED).update(
            status=ImportJob.Status.QUEUED
        )
        if not claimed:
            return False
        if job.contact_list_id is None:
            contact_list, _ = ContactList.objects.get_or_create(owner=job.owner, name=job.new_list_name)
            ImportJob.objects.filter(pk=job.pk).update(contact_list=contact_list)
        if background:
            if enqueue is None:
                from campaigns.tasks import import_contacts as task

                enqueue = task.delay
            transaction.on_commit(lambda: enqueue(job.pk))
    if not background:
        run(job_id=job.pk)
    job.refresh_from_db()
    return True


def cancel(*, job):
    from campaigns.models import ImportJob

    done = ImportJob.objects.filter(pk=job.pk, status=ImportJob.Status.PREVIEWED).update(
        status=ImportJob.Status.CANCELLED, finished_at=timezone.now()
    )
    if done:
        job.file.delete(save=False)
    return bool(done)


def run(*, job_id):
    """Run a queued job (in the request or in the Celery task): progress after every chunk."""
    from campaigns.models import ImportJob

    claimed = ImportJob.objects.filter(pk=job_id, status=ImportJob.Status.QUEUED).update(
        status=ImportJob.Status.RUNNING, started_at=timezone.now(), processed_rows=0
    )
    if not claimed:
        log.info("import job %s is not queued; nothing to do", job_id)
        return None
    job = ImportJob.objects.select_related("owner", "contact_list").get(pk=job_id)

    def progress(processed):
        ImportJob.objects.filter(pk=job_id).update(processed_rows=processed)

    try:
        if job.contact_list is None or job.contact_list.owner_id != job.owner_id:
            raise FileRefused("The list of this import is gone.")
        result = service.import_file(
            owner=job.owner, path=job.file.path, filename=job.original_name, encoding=job.encoding,
            contact_list=job.contact_list, dry_run=False, progress=progress, max_rows=settings.IMPORT_MAX_ROWS,
        )
    except Exception as exc:
        log.exception("import job %s failed", job_id)
        message = str(exc) if isinstance(exc, FileRefused) else f"The import stopped: {exc.__class__.__name__}."
        ImportJob.objects.filter(pk=job_id).update(
            status=ImportJob.Status.FAILED, notes=message, finished_at=timezone.now()
        )
        return None
    notes = ""
    previewed = job.preview.get("counts") or {}
    if previewed and previewed != result.counts:
        notes = (
            "Your contacts changed between the preview and the import, so the figures differ from the preview's: "
            + ", ".join(f"{k} {previewed.get(k, 0)} → {result.counts[k]}" for k in service.OUTCOMES
                        if previewed.get(k, 0) != result.counts[k])
        )
    ImportJob.objects.filter(pk=job_id).update(
        status=ImportJob.Status.DONE,
        finished_at=timezone.now(),
        total_rows=result.processed_rows,
        processed_rows=result.processed_rows,
        created_count=result.counts[service.CREATED],
        updated_count=result.counts[service.UPDATED],
        merged_count=result.counts[service.MERGED],
        suppressed_count=result.counts[service.SUPPRESSED],
        rejected_count=result.counts[service.REJECTED],
        blank_count=result.blank_rows,
        rejected_rows=result.rejected,
        notes=notes,
    )
    return result


def status_payload(job):
    """What the progress bar polls."""
    return {
        "id": job.pk,
        "status": job.status,
        "status_display": job.get_status_display(),
        "total_rows": job.total_rows,
        "processed_rows": job.processed_rows,
        "percent": job.percent,
        "finished": job.status not in (job.Status.QUEUED, job.Status.RUNNING, job.Status.PREVIEWED),
        "counts": {
            "created": job.created_count, "updated": job.updated_count, "merged": job.merged_count,
            "suppressed": job.suppressed_count, "rejected": job.rejected_count, "blank": job.blank_count,
        },
        "notes": job.notes,
    }


def rejected_report_rows(job):
    """Header and rows of the downloadable report of rejected rows."""
    return ["row", "address", "reason"], [[r["row"], r["address"], r["reason"]] for r in job.rejected_rows]
