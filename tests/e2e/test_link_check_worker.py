"""End to end: a campaign's link check runs in a real Celery worker that consumes only the `checks`
queue, while the marketer's page polls its JSON, against a real HTTP server in this process.

The worker (`celery -A config worker -Q checks`, a subprocess against this test's database and the
run's Redis) can only have got the task from that queue: the route, not the test, put it there.

Select with `-m e2e`; needs DATABASE_URL (PostgreSQL) and REDIS_URL.
"""

import json
import time

import pytest
from django.urls import reverse

from campaigns.models import LinkCheckRun
from tests.e2e.test_import_worker import WorkerOnly, import_broker_url  # noqa: F401  (fixture)
from tests.e2e.test_worker_sends_campaign import CELERY, CeleryProcess
from tests.factories import CampaignFactory, ContactFactory, ContactListFactory, MarketerFactory
from tests.http_server import http_server_factory  # noqa: F401  (pytest fixture)

pytestmark = [pytest.mark.e2e, pytest.mark.redis]

DEADLINE_SECONDS = 90


class ChecksWorker(WorkerOnly):
    def start(self, **extra_env):
        env = self.environment(extra_env)
        command = [CELERY, "-A", "config", "worker", "-Q", "checks", "--concurrency", "1", "--pool", "prefork"]
        command += ["-l", "INFO", "-n", f"{self.application_name}@%h"]
        self.processes.append(
            CeleryProcess("worker", command, env=env, cwd=self.tmp_path, log_path=self.tmp_path / "worker.log")
        )


@pytest.fixture
def checks_worker(request, tmp_path, import_broker_url):
    cluster = ChecksWorker(tmp_path=tmp_path, broker_url=import_broker_url)
    yield cluster
    cluster.stop()
    cluster.end_database_connections()
    reports = [getattr(request.node, f"rep_{when}", None) for when in ("setup", "call")]
    if any(report is not None and report.failed for report in reports):
        cluster.print_logs()


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_worker_on_the_checks_queue_checks_every_link_while_the_page_polls(
    checks_worker, http_server_factory, client, settings
):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    server = http_server_factory()
    owner = MarketerFactory(username="links-e2e")
    client.force_login(owner)
    contact = ContactFactory(owner=owner, email="ann@example.org", attributes={"City": "Pune"})
    campaign = CampaignFactory(
        owner=owner,
        lists=[ContactListFactory(owner=owner, contacts=[contact])],
        body_html=(
            f'<p><a href="{server.url("/ok")}">ok</a> <a href="{server.url("/missing")}">gone</a> '
            f'<a href="{server.url("/chain/3")}">moved</a> <a href="{server.url("/slow")}">slow</a> '
            f'<a href="{server.url("/to")}?url=/{{{{ City }}}}">yours</a> <a href="mailto:us@example.com">mail</a></p>'
        ),
    )
    checks_worker.start(LINK_CHECK_TIMEOUT_SECONDS="1", LINK_CHECK_CONCURRENCY="2")

    response = client.post(reverse("campaign_link_checks", args=[campaign.pk]))
    assert response.status_code == 302
    run = LinkCheckRun.objects.get()

    status_url = reverse("campaign_link_checks_status", args=[campaign.pk]) + "?format=json"
    seen = []
    deadline = time.monotonic() + DEADLINE_SECONDS
    while True:
        data = json.loads(client.get(status_url).content)
        seen.append(data["state"])
        if not data["running"]:
            break
        checks_worker.check_alive()
        if time.monotonic() > deadline:
            pytest.fail(f"the link check did not finish within {DEADLINE_SECONDS}s: {data}")
        time.sleep(0.1)

    assert data["state"] == "done", data
    assert seen[0] in ("waiting", "running")
    assert data["sample_recipient"] == "ann@example.org"
    results = {r["url"]: (r["level"], r["status_code"], r["redirects"], r["personalized"]) for r in data["results"]}
    assert results == {
        server.url("/ok"): ("ok", 200, 0, False),
        server.url("/missing"): ("error", 404, 0, False),
        server.url("/chain/3"): ("ok", 200, 3, False),
        server.url("/slow"): ("warning", None, 0, False),
        server.url("/to?url=/Pune"): ("ok", 200, 1, True),
    }
    assert data["counts"] == {"ok": 3, "warning": 1, "error": 1}
    run.refresh_from_db()
    assert run.started_at is not None and run.finished_at is not None
    assert all(h["User-Agent"].startswith("CampaignManager-LinkCheck/") for _m, _p, h in server.requests)
    assert "campaigns.check_links" in checks_worker.processes[0].log_text()
