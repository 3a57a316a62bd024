"""End to end: a real Celery beat and worker send a scheduled campaign.

Beat (DatabaseScheduler) fires the dispatcher every second, the dispatcher
claims batches, and a prefork worker sends them over STARTTLS with AUTH to an
aiosmtpd server running in this test process. Both run as subprocesses against
this test's PostgreSQL database and a database of the run's own redis-server
(tests.isolation), exactly as `celery -A config worker` and `celery -A config beat`
run in production.

Select with `-m e2e`; needs DATABASE_URL (PostgreSQL) and REDIS_URL.
"""

import email.parser
import email.policy
import io
import logging
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from pathlib import Path
from urllib.parse import quote, urlsplit

import pytest
import redis
from django.conf import settings
from django.core.management import call_command
from django.db import connection
from django.db.models import Count
from django.utils import timezone

from campaigns.models import Campaign, Email
from campaigns.services import lifecycle
from contacts.models import Contact
from sending.models import SmtpAccount
from tests.factories import CampaignFactory, ContactFactory, ContactListFactory, MarketerFactory, SmtpAccountFactory
from tests.smtp_server import RecordingHandler, smtp_server_factory, tls_files  # noqa: F401  (fixtures)

pytestmark = [pytest.mark.e2e, pytest.mark.redis]

CELERY = str(Path(sys.executable).with_name("celery"))
# The workers' broker: a database of the run's own redis-server apart from database 0, where this
# process publishes and caches; flushed before and after, so no task of an earlier test reaches them.
E2E_REDIS_DB = 15
RECIPIENTS = 500
DEADLINE_SECONDS = 120
STOP_TIMEOUT_SECONDS = 30
SMTP_LOGIN = "e2e-sender"
SMTP_PASSWORD = "e2e smtp secret"


# --- helpers ---------------------------------------------------------------------------


def redis_url_with_db(url, db):
    """`url` (the run's own redis-server, always redis://host:port/n) with database `db`."""
    return urlsplit(url)._replace(path=f"/{db}").geturl()


def database_url_for_subprocesses(*, application_name):
    """A DATABASE_URL naming the database this test runs on (test_<name>, not <name>)."""
    db = connection.settings_dict
    user = quote(db["USER"] or "", safe="")
    password = quote(str(db["PASSWORD"] or ""), safe="")
    credentials = f"{user}:{password}@" if password else (f"{user}@" if user else "")
    host = quote(db["HOST"] or "", safe="")  # a socket directory becomes %2F...
    port = f":{db['PORT']}" if db["PORT"] else ""
    name = quote(db["NAME"], safe="")
    # application_name tags the subprocesses' connections, so teardown can end exactly those.
    return f"postgres://{credentials}{host}{port}/{name}?application_name={application_name}"


class CeleryProcess:
    """One `celery` subprocess in a process group of its own, its output in a log file."""

    def __init__(self, name, args, *, env, cwd, log_path):
        self.name = name
        self.log_path = log_path
        self._log = open(log_path, "wb")
        self.popen = subprocess.Popen(
            args,
            env=env,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    @property
    def running(self):
        return self.popen.poll() is None

    def stop(self, timeout=STOP_TIMEOUT_SECONDS):
        """SIGTERM (a worker finishes the task in hand), then SIGKILL to the whole group."""
        if self.running:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                # The leader is not reaped yet, so its group id is still ours: this reaches
                # the prefork children too, and nothing else.
                try:
                    os.killpg(self.popen.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.popen.wait(10)
        if not self._log.closed:
            self._log.close()

    def log_text(self):
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""


class CeleryCluster:
    """A worker and a beat against this test's database, started on demand, always stopped."""

    def __init__(self, *, tmp_path, broker_url):
        self.tmp_path = tmp_path
        self.broker_url = broker_url
        self.application_name = f"campaigns-e2e-{uuid.uuid4().hex[:8]}"
        self.processes = []

    def environment(self, extra):
        env = dict(os.environ)
        env.pop("CELERY_TASK_ALWAYS_EAGER", None)
        var_dir = self.tmp_path / "var"
        var_dir.mkdir(exist_ok=True)
        env.update(
            DJANGO_SETTINGS_MODULE="config.settings",
            PYTHONPATH=os.pathsep.join(filter(None, [str(settings.BASE_DIR), env.get("PYTHONPATH", "")])),
            PYTHONUNBUFFERED="1",
            DATABASE_URL=database_url_for_subprocesses(application_name=self.application_name),
            REDIS_URL=self.broker_url,
            VAR_DIR=str(var_dir),
            # The same keys as this process, or the worker cannot decrypt the SMTP password.
            FIELD_ENCRYPTION_KEYS=",".join(settings.FIELD_ENCRYPTION_KEYS),
            SMTP_ALLOW_PRIVATE_HOSTS="1",
            DISPATCH_INTERVAL_SECONDS="1",
        )
        env.update({key: str(value) for key, value in extra.items()})
        return env

    def start(self, **extra_env):
        env = self.environment(extra_env)
        # cwd is a scratch folder so nothing (pid or schedule files) lands in the checkout.
        self.processes.append(
            CeleryProcess(
                "worker",
                [
                    CELERY,
                    "-A",
                    "config",
                    "worker",
                    "--concurrency",
                    "2",
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
        self.processes.append(
            CeleryProcess(
                "beat",
                [CELERY, "-A", "config", "beat", "-S", "django_celery_beat.schedulers:DatabaseScheduler", "-l", "INFO"],
                env=env,
                cwd=self.tmp_path,
                log_path=self.tmp_path / "beat.log",
            )
        )

    def stop(self):
        for process in reversed(self.processes):
            process.stop()

    def check_alive(self):
        for process in self.processes:
            if not process.running:
                pytest.fail(
                    f"celery {process.name} exited early with code {process.popen.returncode}:\n"
                    f"{process.log_text()[-5000:]}"
                )

    def wait_for(self, condition, *, timeout, describe):
        """Poll `condition` until true; fail with `describe()` after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        while not condition():
            self.check_alive()
            if time.monotonic() > deadline:
                pytest.fail(f"not done within {timeout}s: {describe()}")
            time.sleep(0.2)

    def end_database_connections(self):
        """End any connection of ours still open, so pytest-django can flush and drop the database."""
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND application_name = %s AND pid <> pg_backend_pid()",
                [self.application_name],
            )

    def print_logs(self):
        for process in self.processes:
            print(f"\n===== celery {process.name} log ({process.log_path}) =====")
            print(process.log_text())


# --- fixtures --------------------------------------------------------------------------


@pytest.fixture
def e2e_broker_url(redis_url):
    url = redis_url_with_db(redis_url, E2E_REDIS_DB)
    client = redis.Redis.from_url(url)
    client.flushdb()
    yield url
    client.flushdb()
    client.close()


@pytest.fixture
def celery_cluster(request, tmp_path, e2e_broker_url):
    cluster = CeleryCluster(tmp_path=tmp_path, broker_url=e2e_broker_url)
    yield cluster
    # Worker and beat first: only then can their database connections be ended for good.
    cluster.stop()
    cluster.end_database_connections()
    reports = [getattr(request.node, f"rep_{when}", None) for when in ("setup", "call")]
    if any(report is not None and report.failed for report in reports):
        cluster.print_logs()


@pytest.fixture
def quiet_smtp_log():
    # aiosmtpd logs every SMTP command at INFO: 2,000+ lines for 500 messages, written
    # by this process while it serves the worker. Errors still show.
    logger = logging.getLogger("mail.log")
    level = logger.level
    logger.setLevel(logging.ERROR)
    yield
    logger.setLevel(level)


# --- the test --------------------------------------------------------------------------


def campaign_status(campaign_id):
    return Campaign.objects.filter(pk=campaign_id).values_list("status", flat=True).first()


def email_status_counts(campaign_id):
    rows = Email.objects.filter(campaign_id=campaign_id).values("status").annotate(n=Count("id"))
    return {row["status"]: row["n"] for row in rows}


# serialized_rollback: an earlier transactional test's flush removed the rows data
# migrations create (the Marketers group, the dispatcher's lock row); this restores them.
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_worker_and_beat_send_every_recipient_exactly_once(
    quiet_smtp_log, smtp_server_factory, tls_files, celery_cluster, settings
):
    settings.DISPATCH_INTERVAL_SECONDS = 1  # what setup_schedules, run here, stores for beat
    t0 = time.monotonic()
    handler = RecordingHandler(users={SMTP_LOGIN: SMTP_PASSWORD})
    server = smtp_server_factory(handler, tls=tls_files, auth=True, require_starttls=True)

    owner = MarketerFactory(username="e2e-marketer")
    account = SmtpAccountFactory(
        owner=owner,
        host="localhost",
        port=server.port,
        security=SmtpAccount.Security.STARTTLS,
        username=SMTP_LOGIN,
        raw_password=SMTP_PASSWORD,
        max_per_minute=100_000,
        max_per_hour=100_000,
        max_per_day=100_000,
        batch_size=50,
    )
    contacts = Contact.objects.bulk_create(ContactFactory.build_batch(RECIPIENTS, owner=owner))
    expected = {contact.email for contact in contacts}
    assert len(expected) == RECIPIENTS
    contact_list = ContactListFactory(owner=owner, contacts=contacts)
    campaign = CampaignFactory(owner=owner, smtp_account=account, lists=[contact_list])
    call_command("setup_schedules", stdout=io.StringIO())
    lifecycle.schedule(campaign=campaign, at=timezone.now())

    started = time.monotonic()
    prepared = started - t0
    celery_cluster.start(SMTP_CA_FILE=tls_files.ca_file)
    celery_cluster.wait_for(
        lambda: campaign_status(campaign.pk) == Campaign.Status.COMPLETED and len(handler.messages) >= RECIPIENTS,
        timeout=DEADLINE_SECONDS,
        describe=lambda: (
            f"campaign {campaign_status(campaign.pk)}, emails {email_status_counts(campaign.pk)}, "
            f"{len(handler.messages)} message(s) received, refused {handler.refused[:3]}"
        ),
    )
    elapsed = time.monotonic() - started
    # Stopped before counting: a worker's warm shutdown finishes what it holds, so
    # a late duplicate would arrive now, not after the assertions.
    celery_cluster.stop()
    print(
        f"\ndata {prepared:.1f}s; {RECIPIENTS} recipients sent by worker+beat in {elapsed:.1f}s (start-up included) "
        f"over {handler.connections} connection(s); stopped in {time.monotonic() - started - elapsed:.1f}s"
    )

    received = Counter(address.lower() for message in handler.messages for address in message.rcpt_tos)
    assert set(received) == expected
    assert [address for address, n in received.items() if n != 1] == []
    assert all(len(message.rcpt_tos) == 1 for message in handler.messages)
    assert len(handler.messages) == RECIPIENTS
    assert handler.refused == []
    assert handler.logins and all(attempt.success and attempt.login == SMTP_LOGIN for attempt in handler.logins)

    rows = list(Email.objects.filter(campaign=campaign))
    assert len(rows) == RECIPIENTS
    assert {row.to_email for row in rows} == expected
    assert {(row.status, row.smtp_code) for row in rows} == {(Email.Status.SENT, 250)}
    assert all(row.sent_at is not None and row.attempts == 1 for row in rows)
    assert not any(row.possible_duplicate for row in rows)
    # The Message-ID stored before sending is the one the recipient got.
    headers = email.parser.BytesHeaderParser(policy=email.policy.default)  # headers only: 500 full parses are slow
    received_ids = {headers.parsebytes(message.content)["Message-ID"] for message in handler.messages}
    assert {row.message_id for row in rows} == received_ids

    campaign.refresh_from_db()
    assert campaign.status == Campaign.Status.COMPLETED
    assert campaign.started_at is not None and campaign.completed_at is not None


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
@pytest.mark.parametrize("smtputf8", [True, False], ids=["smtputf8", "no-smtputf8"])
def test_a_worker_sends_internationalised_addresses_and_no_recipient_stalls_the_campaign(
    smtputf8, smtp_server_factory, celery_cluster, settings
):
    """The issue's own recipients: a batch with zoë.müller@example.de and 李雷@example.cn beside ASCII
    ones made the worker raise on every attempt, and the campaign stayed 'sending' forever."""
    settings.DISPATCH_INTERVAL_SECONDS = 1
    handler = RecordingHandler()
    server = smtp_server_factory(handler, enable_SMTPUTF8=smtputf8)
    owner = MarketerFactory(username="e2e-international")
    account = SmtpAccountFactory(
        owner=owner,
        host="127.0.0.1",
        port=server.port,
        security="none",
        username="",
        max_per_minute=100_000,
        max_per_hour=100_000,
        max_per_day=100_000,
    )
    international = ["zoë.müller@example.de", "李雷@example.cn"]
    plain = ["asha@example.org", "ravi@example.org", "mira@example.org"]
    contacts = [ContactFactory(owner=owner, email=address) for address in [plain[0], *international, *plain[1:]]]
    campaign = CampaignFactory(
        owner=owner, smtp_account=account, lists=[ContactListFactory(owner=owner, contacts=contacts)]
    )
    call_command("setup_schedules", stdout=io.StringIO())
    lifecycle.send_now(campaign=campaign, now=timezone.now())

    celery_cluster.start()
    celery_cluster.wait_for(
        lambda: campaign_status(campaign.pk) == Campaign.Status.COMPLETED,
        timeout=DEADLINE_SECONDS,
        describe=lambda: f"campaign {campaign_status(campaign.pk)}, emails {email_status_counts(campaign.pk)}",
    )
    celery_cluster.stop()

    rows = {row.to_email: row for row in Email.objects.filter(campaign=campaign)}
    expected = plain + (international if smtputf8 else [])
    assert sorted(handler.delivered_to()) == sorted(expected)
    assert all(rows[address].status == Email.Status.SENT for address in expected)
    if not smtputf8:
        for address in international:
            assert rows[address].status == Email.Status.FAILED and rows[address].attempts == 1
            assert "does not support SMTPUTF8" in rows[address].smtp_response
