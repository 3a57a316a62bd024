"""End to end: a large contact import runs in a real Celery worker while the admin polls its progress.

The file is uploaded through the admin and previewed by the `campaigns.preview_import` task,
confirmed, and the `campaigns.import_contacts` task runs, both in a `celery -A config worker`
subprocess against this test's PostgreSQL database and the Redis broker REDIS_URL names. The
test polls the job's JSON status endpoint, as the pages do, and sees the preview become ready,
then the processed count move before the report completes.

Select with `-m e2e`; needs DATABASE_URL (PostgreSQL) and REDIS_URL.
"""

import json
import time

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from contacts.imports import service
from contacts.models import Contact, ImportJob
from tests.e2e.test_worker_sends_campaign import CELERY, CeleryCluster, CeleryProcess
from tests.factories import ContactFactory, ContactListFactory

pytestmark = [pytest.mark.e2e, pytest.mark.redis]

ROWS = 30_000
CHUNK = 500
DEADLINE_SECONDS = 120


class WorkerOnly(CeleryCluster):
    """The sending test's cluster, without beat: only the import task is wanted here."""

    def start(self, **extra_env):
        env = self.environment(extra_env)
        self.processes.append(
            CeleryProcess(
                "worker",
                [
                    CELERY,
                    "-A",
                    "config",
                    "worker",
                    "--concurrency",
                    "1",
                    "--pool",
                    "prefork",
                    "-l",
                    "INFO",
                    "-n",
                    f"{self.application_name}@%h",
                ],
                env=env,
                cwd=self.tmp_path,
                log_path=self.tmp_path / "worker.log",
            )
        )


@pytest.fixture
def import_broker_url(redis_url):
    # The broker this process (the admin) sends to: REDIS_URL itself, the run's own redis-server.
    # Repointing a running Celery app at another database proved unreliable (its producer pools are
    # cached per process). Flushed, so the worker gets no task earlier tests of the run left there.
    import redis

    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    client.close()
    return redis_url


@pytest.fixture
def import_worker(request, tmp_path, import_broker_url, settings):
    media = tmp_path / "media"
    media.mkdir()
    settings.MEDIA_ROOT = media
    cluster = WorkerOnly(tmp_path=tmp_path, broker_url=import_broker_url)
    yield cluster
    cluster.stop()
    cluster.end_database_connections()
    reports = [getattr(request.node, f"rep_{when}", None) for when in ("setup", "call")]
    if any(report is not None and report.failed for report in reports):
        cluster.print_logs()


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_large_import_runs_in_the_worker_with_progress(import_worker, settings, client, request):
    settings.IMPORT_SYNC_MAX_ROWS = 2000
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    from tests.factories import MarketerFactory

    owner = MarketerFactory(username="import-e2e")
    client.force_login(owner)
    target = ContactListFactory(owner=owner, name="Big list")
    ContactFactory(owner=owner, email="row7@example.com", status=Contact.Status.UNSUBSCRIBED, name="Gone")
    lines = ["Email,Name,Plan"]
    for i in range(ROWS):
        if i % 20 == 0:
            lines.append(f"broken-{i},Broken,x")
        else:
            lines.append(f"Row{i}@Example.com,Person {i},plan{i % 3}")
    lines.append("row1@example.com,Duplicate,")
    data = ("\n".join(lines) + "\n").encode()
    import_worker.start(IMPORT_CHUNK_SIZE=str(CHUNK), MEDIA_ROOT=str(settings.MEDIA_ROOT))
    response = client.post(
        reverse("admin:contacts_importjob_add"),
        {"file": SimpleUploadedFile("big.csv", data), "contact_list": target.pk},
    )
    assert response.status_code == 302
    job = ImportJob.objects.get()
    assert job.status == ImportJob.Status.UPLOADED  # the request read no row: the worker reads the file
    status_url = reverse("admin:contacts_importjob_status", args=[job.pk])
    deadline = time.monotonic() + DEADLINE_SECONDS
    while (status := json.loads(client.get(status_url).content)["status"]) in ("uploaded", "reading"):
        import_worker.check_alive()
        if time.monotonic() > deadline:
            pytest.fail(f"preview not ready within {DEADLINE_SECONDS}s: {status}")
        time.sleep(0.1)
    job.refresh_from_db()
    invalid = ROWS // 20
    expected = {"created": ROWS - invalid - 1, "updated": 0, "merged": 1, "suppressed": 1, "rejected": invalid}
    assert job.status == ImportJob.Status.PREVIEWED, job.notes
    assert job.preview["counts"] == expected

    response = client.post(reverse("admin:contacts_importjob_preview", args=[job.pk]), {"confirm": "1"})
    assert response.status_code == 302
    job.refresh_from_db()
    # Queued for the worker, not run in the request; the worker may have taken it already.
    assert job.status in (ImportJob.Status.QUEUED, ImportJob.Status.RUNNING)

    seen = []
    deadline = time.monotonic() + DEADLINE_SECONDS
    while True:
        payload = json.loads(client.get(status_url).content)
        seen.append((payload["status"], payload["processed_rows"]))
        if payload["finished"]:
            break
        import_worker.check_alive()
        if time.monotonic() > deadline:
            pytest.fail(f"import not done within {DEADLINE_SECONDS}s: {seen[-5:]}")
        time.sleep(0.02)

    assert payload["status"] == "done", payload
    assert payload["percent"] == 100 and payload["processed_rows"] == ROWS + 1
    assert {k: payload["counts"][k] for k in expected} == expected
    progress = [n for status, n in seen if status == "running"]
    # The bar moved: the page saw the worker part-way through, more than once.
    assert len({n for n in progress if 0 < n < ROWS + 1}) >= 2, seen[:50]
    assert progress == sorted(progress)
    assert target.contacts.count() == expected["created"]
    assert Contact.objects.get(email="row7@example.com").status == Contact.Status.UNSUBSCRIBED
    assert Contact.objects.get(email="row1@example.com").name == "Duplicate"
    job.refresh_from_db()
    assert job.rejected_total == invalid and job.rejected_rows[0]["row"] == 2
    assert len(job.rejected_rows) == service.REJECTED_SAMPLE
    assert not job.file  # the uploaded file went with the import's end
    page = client.get(reverse("admin:contacts_importjob_change", args=[job.pk])).content.decode()
    assert "Download the report" in page
