"""An import job's life: the preview read in a worker (never in the upload request), the uploaded file
deleted when the job ends or when it is never confirmed, and the periodic cleanup that does the latter."""

import io
import json
from datetime import timedelta
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from contacts.imports import jobs
from contacts.models import Contact, ImportJob
from contacts.tasks import delete_stale_import_files, preview_import
from tests.contacts.import_helpers import read_uploads
from tests.factories import ContactListFactory

pytestmark = pytest.mark.django_db

CSV = b"email,name\nann@example.com,Ann\nbob@example.com,Bob\nbroken,X\n"


@pytest.fixture(autouse=True)
def media_root(settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path / "media"
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    return settings.MEDIA_ROOT


def upload(owner, data=CSV, name="c.csv", **kwargs):
    kwargs.setdefault("contact_list", ContactListFactory(owner=owner))
    return jobs.create_job(owner=owner, uploaded_file=SimpleUploadedFile(name, data), **kwargs)


def files_in(media_root):
    return [p for p in media_root.rglob("*") if p.is_file()]


# --- the preview, in a worker ----------------------------------------------------------------------


def test_the_upload_request_reads_no_row_and_the_page_waits_for_the_worker(marketer, marketer_client):
    target = ContactListFactory(owner=marketer)

    response = marketer_client.post(
        reverse("admin:contacts_importjob_add"), {"file": SimpleUploadedFile("c.csv", CSV), "contact_list": target.pk}
    )

    job = ImportJob.objects.get()
    assert response.status_code == 302
    assert response["Location"] == reverse("admin:contacts_importjob_preview", args=[job.pk])
    assert (job.status, job.preview, job.total_rows, job.rejected_rows) == (ImportJob.Status.UPLOADED, {}, 0, [])
    page = marketer_client.get(response["Location"]).content.decode()
    assert "Reading the file…" in page and 'data-waiting="uploaded reading"' in page
    assert "js/import_progress.js" in page and "Confirm import" not in page
    status = json.loads(marketer_client.get(reverse("admin:contacts_importjob_status", args=[job.pk])).content)
    assert (status["status"], status["finished"]) == ("uploaded", False)
    # Confirming before the preview is ready does nothing.
    marketer_client.post(response["Location"], {"confirm": "1"})
    job.refresh_from_db()
    assert job.status == ImportJob.Status.UPLOADED and not Contact.objects.exists()

    preview_import(job.pk)  # what the worker runs

    job.refresh_from_db()
    assert job.status == ImportJob.Status.PREVIEWED and job.started_at is not None
    assert job.preview["counts"] == {"created": 2, "updated": 0, "merged": 0, "suppressed": 0, "rejected": 1}
    page = marketer_client.get(response["Location"]).content.decode()
    assert "Confirm import" in page and "ann@example.com" in page
    assert not Contact.objects.exists()


def test_create_job_queues_the_preview_once_the_upload_commits(marketer, django_capture_on_commit_callbacks):
    queued = []
    with django_capture_on_commit_callbacks(execute=True):
        job = upload(marketer, enqueue=queued.append)
    assert queued == [job.pk]


def test_the_preview_task_has_a_time_limit(settings):
    assert preview_import.soft_time_limit == settings.IMPORT_PREVIEW_TIME_LIMIT_SECONDS
    assert preview_import.time_limit > preview_import.soft_time_limit


def test_a_file_the_worker_refuses_fails_the_job_with_the_reason_and_is_deleted(marketer, marketer_client, media_root):
    job = upload(marketer, data=b"Name,Phone\nAsha,1\n")
    assert len(files_in(media_root)) == 1

    read_uploads()

    job.refresh_from_db()
    assert job.status == ImportJob.Status.FAILED and "No address column found" in job.notes
    assert not job.file and not files_in(media_root)
    page = marketer_client.get(reverse("admin:contacts_importjob_preview", args=[job.pk]), follow=True)
    assert "No address column found" in page.content.decode() and "Nothing was imported" in page.content.decode()


def test_a_preview_redelivered_after_its_worker_was_lost_fails_rather_than_read_again(marketer, media_root):
    job = upload(marketer)
    ImportJob.objects.filter(pk=job.pk).update(status=ImportJob.Status.READING, started_at=timezone.now())

    preview_import(job.pk)

    job.refresh_from_db()
    assert job.status == ImportJob.Status.FAILED and "stopped before its end" in job.notes
    assert job.preview == {} and not files_in(media_root)


def test_a_job_cancelled_while_read_stays_cancelled(marketer, marketer_client, media_root):
    job = upload(marketer)
    marketer_client.post(reverse("admin:contacts_importjob_preview", args=[job.pk]), {"cancel": "1"})

    preview_import(job.pk)

    job.refresh_from_db()
    assert job.status == ImportJob.Status.CANCELLED and job.preview == {}
    assert not files_in(media_root)


# --- the uploaded file ends with its job ---------------------------------------------------------------


def test_the_file_is_deleted_when_the_import_is_done(marketer, media_root):
    job = upload(marketer)
    read_uploads()
    path = Path(job.file.path)
    assert path.exists()

    jobs.confirm(job=job)

    assert job.status == ImportJob.Status.DONE and job.created_count == 2
    assert not path.exists() and not job.file and not files_in(media_root)
    assert not path.parent.exists()  # the upload's own directory too


def test_the_file_is_deleted_when_the_import_fails(marketer, other_marketer, media_root):
    job = upload(marketer)
    read_uploads()
    # The list went to someone else between the preview and the import: the import refuses to run.
    ImportJob.objects.filter(pk=job.pk).update(contact_list=ContactListFactory(owner=other_marketer))

    jobs.confirm(job=job)

    assert job.status == ImportJob.Status.FAILED and job.notes
    assert not job.file and not files_in(media_root)


def test_the_file_is_deleted_when_the_background_import_is_done(settings, marketer, media_root):
    settings.IMPORT_SYNC_MAX_ROWS = 1
    job = upload(marketer)
    read_uploads()
    job.refresh_from_db()
    jobs.confirm(job=job, enqueue=lambda job_id: None)
    assert job.status == ImportJob.Status.QUEUED and len(files_in(media_root)) == 1

    from contacts.tasks import import_contacts

    import_contacts(job.pk)

    job.refresh_from_db()
    assert job.status == ImportJob.Status.DONE and not files_in(media_root)


# --- the periodic cleanup --------------------------------------------------------------------------------


def age(job, **delta):
    ImportJob.objects.filter(pk=job.pk).update(created_at=timezone.now() - timedelta(**delta))


def test_the_cleanup_expires_jobs_never_confirmed_and_deletes_their_files(settings, marketer, media_root):
    settings.IMPORT_UNCONFIRMED_FILE_HOURS = 24
    old_preview, recent_preview, old_upload = upload(marketer), upload(marketer), upload(marketer)
    read_uploads()
    ImportJob.objects.filter(pk=old_upload.pk).update(status=ImportJob.Status.UPLOADED)
    age(old_preview, hours=25), age(old_upload, hours=25), age(recent_preview, hours=23)

    delete_stale_import_files()

    statuses = dict(ImportJob.objects.values_list("pk", "status"))
    assert statuses == {old_preview.pk: "expired", old_upload.pk: "expired", recent_preview.pk: "previewed"}
    old_preview.refresh_from_db()
    assert "Not confirmed within 24 hours" in old_preview.notes and not old_preview.file
    assert [p.name for p in files_in(media_root)] == ["c.csv"]
    recent_preview.refresh_from_db()
    assert Path(recent_preview.file.path).exists()
    assert not jobs.confirm(job=old_preview)  # too late: nothing imported
    assert not Contact.objects.exists()


def test_the_cleanup_fails_a_preview_its_time_limit_ended(settings, marketer, media_root):
    settings.IMPORT_PREVIEW_TIME_LIMIT_SECONDS = 60
    killed, reading = upload(marketer), upload(marketer)
    ImportJob.objects.filter(pk=killed.pk).update(
        status=ImportJob.Status.READING, started_at=timezone.now() - timedelta(minutes=10)
    )
    ImportJob.objects.filter(pk=reading.pk).update(status=ImportJob.Status.READING, started_at=timezone.now())

    jobs.delete_stale_uploads()

    killed.refresh_from_db(), reading.refresh_from_db()
    assert killed.status == ImportJob.Status.FAILED and "more than 60 seconds" in killed.notes and not killed.file
    assert reading.status == ImportJob.Status.READING and Path(reading.file.path).exists()


def test_the_cleanup_deletes_any_file_an_ended_job_still_holds(marketer, media_root):
    job = upload(marketer)
    ImportJob.objects.filter(pk=job.pk).update(status=ImportJob.Status.DONE)

    assert jobs.delete_stale_uploads() == 1

    job.refresh_from_db()
    assert not job.file and not files_in(media_root)


def test_setup_schedules_registers_the_cleanup_once():
    call_command("setup_schedules", stdout=io.StringIO())
    call_command("setup_schedules", stdout=io.StringIO())

    task = PeriodicTask.objects.get(task="campaigns.delete_stale_import_files")
    assert task.enabled and task.interval.every == 300
