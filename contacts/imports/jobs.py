"""Import jobs: upload, preview (a dry run in a Celery task), confirm, run (in the request or a task), report.

Every status change is one conditional UPDATE, so a double click on "Confirm"
or a redelivered task never runs an import twice.

The uploaded file lives only as long as the job may read it: it is deleted when the job ends (done,
failed, cancelled), and a job never confirmed expires, its file deleted: by delete_stale_uploads, or
when its page is visited (expire_if_unconfirmed).
"""

import functools
import logging
import os
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from celery import current_app
from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from contacts.imports import reader, service
from contacts.imports.reader import FileRefused
from contacts.models import ContactList, ImportJob

# The tasks of contacts.tasks, queued by their registered names: that module calls this one.
PREVIEW_TASK = "campaigns.preview_import"
IMPORT_TASK = "campaigns.import_contacts"


def queue_task(name, job_id):
    current_app.tasks[name].delay(job_id)


log = logging.getLogger(__name__)

# Rows per page of the preview; it keeps settings.IMPORT_PREVIEW_ROWS in all.
PREVIEW_PAGE_ROWS = 100


class ImportRefused(Exception):
    """Shown to the marketer as it is."""


def check_upload_size(*, size):
    limit = settings.IMPORT_MAX_UPLOAD_BYTES
    if size > limit:
        raise ImportRefused(
            f"The file is {size / 2**20:.1f} MB; the limit is {limit / 2**20:.0f} MB. Split it into smaller files."
        )


def create_job(*, owner, uploaded_file, contact_list=None, new_list_name="", encoding="", enqueue=None):
    """Store the upload and queue its preview (read_preview, in a worker); returns the ImportJob. Writes no contact.

    Here only what costs nothing is checked (size, type, the declared sizes of a workbook's parts):
    the request never reads the file's rows.
    """
    check_upload_size(size=uploaded_file.size)
    if contact_list is not None and contact_list.owner_id != owner.pk:
        raise ImportRefused("No such list.")
    job = ImportJob(
        owner=owner,
        contact_list=contact_list,
        new_list_name=new_list_name.strip() if contact_list is None else "",
        original_name=os.path.basename(uploaded_file.name)[:255],
        encoding=encoding,
        status=ImportJob.Status.UPLOADED,
    )
    job.file.save(uploaded_file.name, uploaded_file, save=False)
    try:
        reader.check_file(job.file.path, filename=job.original_name, encoding=encoding)
    except FileRefused as exc:
        _delete_file(job.file.name)
        raise ImportRefused(str(exc)) from None
    job.save()
    enqueue = enqueue or functools.partial(queue_task, PREVIEW_TASK)
    transaction.on_commit(lambda: enqueue(job.pk))
    return job


def read_preview(*, job_id):
    """The dry run of an uploaded job (the preview task): its figures, columns, first rows; or why it cannot be.

    Returns the ImportResult, or None when the job was not waiting to be read or the file was refused.
    """
    claimed = ImportJob.objects.filter(pk=job_id, status=ImportJob.Status.UPLOADED).update(
        status=ImportJob.Status.READING, started_at=timezone.now()
    )
    if not claimed:
        # Still "reading": the worker that read it was lost (the task is redelivered then). The file may be
        # what killed it, so it is not read again.
        _fail(
            job_id,
            from_status=ImportJob.Status.READING,
            notes="Reading the file stopped before its end. Save it as CSV, or split it, and upload it again.",
        )
        return None
    job = ImportJob.objects.select_related("owner").get(pk=job_id)
    try:
        result = service.import_file(
            owner=job.owner,
            path=job.file.path,
            filename=job.original_name,
            encoding=job.encoding,
            dry_run=True,
            keep_outcomes=settings.IMPORT_PREVIEW_ROWS,
            max_rows=settings.IMPORT_MAX_ROWS,
        )
    except FileRefused as exc:
        _fail(job_id, from_status=ImportJob.Status.READING, notes=str(exc))
        return None
    except SoftTimeLimitExceeded:
        _fail(job_id, from_status=ImportJob.Status.READING, notes=_too_slow_note())
        return None
    except Exception as exc:
        log.exception("import job %s: the preview failed", job_id)
        _fail(
            job_id,
            from_status=ImportJob.Status.READING,
            notes=f"The file could not be read ({exc.__class__.__name__}).",
        )
        return None
    # Cancelled or expired meanwhile: left as it is.
    ImportJob.objects.filter(pk=job_id, status=ImportJob.Status.READING).update(
        status=ImportJob.Status.PREVIEWED,
        total_rows=result.processed_rows,
        file_description=result.file_description,
        preview={
            "counts": result.counts,
            "blank_rows": result.blank_rows,
            "columns": result.columns,
            "attribute_keys": result.attribute_keys,
            "rows": [o.as_dict() for o in result.outcomes],
        },
        rejected_rows=result.rejected,
    )
    return result


def _too_slow_note():
    return (
        f"Reading the file took more than {settings.IMPORT_PREVIEW_TIME_LIMIT_SECONDS} seconds: "
        "split it into smaller files, or save it as CSV."
    )


def _fail(job_id, *, from_status, notes):
    failed = ImportJob.objects.filter(pk=job_id, status=from_status).update(
        status=ImportJob.Status.FAILED, notes=notes, finished_at=timezone.now()
    )
    if failed:
        delete_upload(job_id=job_id)
    return bool(failed)


@dataclass
class PreviewPage:
    rows: list
    number: int
    pages: int
    first_row_index: int  # 1-based, among the rows the preview keeps
    kept: int  # rows the preview keeps (the file's first ones)

    @property
    def last_row_index(self):
        return self.first_row_index + len(self.rows) - 1


def preview_page(job, *, page):
    """One page of the rows the preview kept; a page out of range gives the nearest one."""
    preview = job.preview or {}
    rows = preview.get("rows") or []
    keys = preview.get("attribute_keys") or []
    pages = max(1, -(-len(rows) // PREVIEW_PAGE_ROWS))
    number = min(max(page, 1), pages)
    start = (number - 1) * PREVIEW_PAGE_ROWS
    return PreviewPage(
        # Each row's attribute values in the order of the file's columns, blank where it sets none.
        rows=[
            {**row, "cells": [row.get("attributes", {}).get(key, "") for key in keys]}
            for row in rows[start : start + PREVIEW_PAGE_ROWS]
        ],
        number=number,
        pages=pages,
        first_row_index=start + 1,
        kept=len(rows),
    )


def runs_in_background(job):
    return job.total_rows > settings.IMPORT_SYNC_MAX_ROWS


def importable_rows(job):
    """Rows of the previewed file that would create or update a contact (merged rows go into these)."""
    counts = (job.preview or {}).get("counts") or {}
    return counts.get(service.CREATED, 0) + counts.get(service.UPDATED, 0)


def confirm(*, job, enqueue=None):
    """Start the import the preview showed. Small files run now; large ones go to Celery.

    Returns True if this call started it (False: confirmed already, cancelled or expired). Raises
    ImportRefused when the preview found nothing to import.
    """
    job = expire_if_unconfirmed(job=job)
    if job.status == ImportJob.Status.PREVIEWED and not importable_rows(job):
        raise ImportRefused("Nothing to import: no row of this file would create or update a contact.")
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
            enqueue = enqueue or functools.partial(queue_task, IMPORT_TASK)
            transaction.on_commit(lambda: enqueue(job.pk))
    if not background:
        run(job_id=job.pk)
    job.refresh_from_db()
    return True


def cancel(*, job):
    """Cancel a job not confirmed yet (being read, or previewed); its file is deleted."""
    done = ImportJob.objects.filter(
        pk=job.pk, status__in=(*ImportJob.READING_STATUSES, ImportJob.Status.PREVIEWED)
    ).update(status=ImportJob.Status.CANCELLED, finished_at=timezone.now())
    if done:
        delete_upload(job_id=job.pk)
    return bool(done)


def delete_upload(*, job_id):
    """Delete the job's uploaded file and forget its name. Harmless if it is gone already."""
    name = ImportJob.objects.filter(pk=job_id).values_list("file", flat=True).first()
    if name:
        _delete_file(name)
        ImportJob.objects.filter(pk=job_id).update(file="")


def _delete_file(name):
    storage = ImportJob._meta.get_field("file").storage
    storage.delete(name)
    # Each upload has a directory of its own (import_upload_path): removed with it once empty.
    try:
        Path(storage.path(name)).parent.rmdir()
    except (OSError, NotImplementedError):
        pass


def _unconfirmed_jobs(*, now):
    """Jobs not confirmed within IMPORT_UNCONFIRMED_FILE_HOURS of their upload: the ones to expire."""
    return ImportJob.objects.filter(
        status__in=(*ImportJob.READING_STATUSES, ImportJob.Status.PREVIEWED),
        created_at__lt=now - timedelta(hours=settings.IMPORT_UNCONFIRMED_FILE_HOURS),
    )


def expire_unconfirmed(*, now=None, job_ids=None):
    """Expire the jobs left unconfirmed for IMPORT_UNCONFIRMED_FILE_HOURS (all, or those of `job_ids`): their
    uploaded file is deleted, as uploads hold personal data. Returns how many expired."""
    now = now or timezone.now()
    hours = settings.IMPORT_UNCONFIRMED_FILE_HOURS
    unconfirmed = _unconfirmed_jobs(now=now)
    if job_ids is not None:
        unconfirmed = unconfirmed.filter(pk__in=job_ids)
    expired_count = 0
    for job_id, status in unconfirmed.values_list("pk", "status"):
        # Conditional: a confirmation at this very moment wins, and its import deletes the file at its end.
        expired = ImportJob.objects.filter(pk=job_id, status=status).update(
            status=ImportJob.Status.EXPIRED,
            finished_at=now,
            notes=f"Not confirmed within {hours:g} hours: the uploaded file was deleted. Upload it again to import it.",
        )
        if expired:
            delete_upload(job_id=job_id)
            expired_count += 1
    return expired_count


def expire_if_unconfirmed(*, job, now=None):
    """Expire `job` now if its time to be confirmed is over (a visit does not wait for the periodic
    cleanup); returns the job as it is now."""
    if expire_unconfirmed(now=now, job_ids=[job.pk]):
        job.refresh_from_db()
    return job


def delete_stale_uploads(*, now=None):
    """The periodic cleanup: fail a preview its task's hard time limit ended, expire the jobs left unconfirmed
    for IMPORT_UNCONFIRMED_FILE_HOURS, delete any file an ended job still holds. Returns how many jobs
    lost their file."""
    now = now or timezone.now()
    deleted = 0
    # Past the task's hard time limit (plus a margin for the worker's clock), no worker reads it any more.
    killed = now - timedelta(seconds=settings.IMPORT_PREVIEW_TIME_LIMIT_SECONDS + 90)
    for job_id in ImportJob.objects.filter(status=ImportJob.Status.READING, started_at__lt=killed).values_list(
        "pk", flat=True
    ):
        deleted += _fail(job_id, from_status=ImportJob.Status.READING, notes=_too_slow_note())
    deleted += expire_unconfirmed(now=now)
    for job_id in (
        ImportJob.objects.filter(status__in=ImportJob.ENDED_STATUSES).exclude(file="").values_list("pk", flat=True)
    ):
        delete_upload(job_id=job_id)
        deleted += 1
    return deleted


def run(*, job_id):
    """Run a queued job (in the request or in the Celery task): progress after every chunk."""
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
            owner=job.owner,
            path=job.file.path,
            filename=job.original_name,
            encoding=job.encoding,
            contact_list=job.contact_list,
            dry_run=False,
            progress=progress,
            max_rows=settings.IMPORT_MAX_ROWS,
        )
    except Exception as exc:
        log.exception("import job %s failed", job_id)
        message = str(exc) if isinstance(exc, FileRefused) else f"The import stopped: {exc.__class__.__name__}."
        _fail(job_id, from_status=ImportJob.Status.RUNNING, notes=message)
        return None
    notes = ""
    previewed = job.preview.get("counts") or {}
    if previewed and previewed != result.counts:
        notes = (
            "Your contacts changed between the preview and the import, so the figures differ from the preview's: "
            + ", ".join(
                f"{k} {previewed.get(k, 0)} → {result.counts[k]}"
                for k in service.OUTCOMES
                if previewed.get(k, 0) != result.counts[k]
            )
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
    delete_upload(job_id=job_id)
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
        "finished": job.status in job.ENDED_STATUSES,
        "counts": {
            "created": job.created_count,
            "updated": job.updated_count,
            "merged": job.merged_count,
            "suppressed": job.suppressed_count,
            "rejected": job.rejected_count,
            "blank": job.blank_count,
        },
        "notes": job.notes,
    }


def rejected_report_rows(job):
    """Header and rows of the downloadable report of rejected rows."""
    return ["row", "address", "reason"], [[r["row"], r["address"], r["reason"]] for r in job.rejected_rows]
