import os

import pytest
from django.conf import settings

from config import embedded_postgres
from tests import isolation
from tests.engine import allow_local_smtp, engine, make_engine  # noqa: F401  (the engine's fixtures, for every test)
from tests.factories import MarketerFactory, SuperuserFactory
from tests.isolation import free_port  # noqa: F401  (imported from here by the SMTP helpers and tests)
from tests.smtp_server import smtp_server_factory, tls_files  # noqa: F401  (pytest fixtures)

STRICT_SERVICES = os.environ.get("STRICT_SERVICES", "") not in ("", "0", "false", "no")
EMBEDDED_POSTGRES_STARTED = pytest.StashKey[bool]()


def pytest_configure(config):
    # The tests' SMTP servers listen on 127.0.0.1 and unprivileged ports, so the run opts out of the
    # SMTP destination guard, as `make run` does (the guard's own tests turn it back on). This process
    # read its settings before this file: set here; the environment carries it to the processes tests start.
    os.environ["SMTP_ALLOW_PRIVATE_HOSTS"] = "1"
    settings.SMTP_ALLOW_PRIVATE_HOSTS = True


def need_service(reason):
    """Skip a test whose service is missing; with STRICT_SERVICES=1 (CI) fail it instead."""
    if STRICT_SERVICES:
        pytest.fail(f"required service missing (STRICT_SERVICES=1): {reason}")
    pytest.skip(reason)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    # Under STRICT_SERVICES no test may quietly skip, whatever skipped it.
    if STRICT_SERVICES and report.skipped and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        report.longrepr = f"skipped under STRICT_SERVICES=1: {report.longrepr}"


@pytest.fixture(scope="session")
def django_db_modify_db_settings(django_db_modify_db_settings_parallel_suffix):
    """A test database no other run uses at the same time (tests.isolation), named before it is created."""
    with isolation.own_test_database(settings.DATABASES["default"]):
        yield


def pytest_sessionstart(session):
    # With DATABASE_URL unset the tests run on the embedded PostgreSQL in VAR_DIR, started here if
    # `make run` (or another session) has not started it; the session stops only a server it started.
    if embedded_postgres.is_used(settings.DATABASES["default"], settings.VAR_DIR):
        session.config.stash[EMBEDDED_POSTGRES_STARTED] = embedded_postgres.start(settings.VAR_DIR)


def pytest_sessionfinish(session):
    if session.config.stash.get(EMBEDDED_POSTGRES_STARTED, False):
        from django.db import connections

        connections.close_all()
        embedded_postgres.stop(settings.VAR_DIR)


@pytest.fixture
def redis_url():
    """The run's own redis-server (tests.isolation): its databases may be flushed, nobody else uses them."""
    url = os.environ.get("REDIS_URL", "")
    if not url:
        need_service("Redis: set REDIS_URL to run this test")
    if url != isolation.run_redis_url:
        pytest.fail(f"REDIS_URL ({url}) is not this run's own redis-server: is tests.isolation loaded (pytest.ini)?")
    import redis

    try:
        redis.Redis.from_url(url, socket_connect_timeout=2).ping()
    except redis.RedisError as exc:
        need_service(f"Redis at {url} does not answer: {exc}")
    return url


@pytest.fixture
def marketer(db):
    return MarketerFactory(username="alice")


@pytest.fixture
def other_marketer(db):
    return MarketerFactory(username="mallory")


@pytest.fixture
def superuser(db):
    return SuperuserFactory(username="root")


@pytest.fixture
def marketer_client(client, marketer):
    client.force_login(marketer)
    return client


@pytest.fixture
def other_client(db, other_marketer):
    from django.test import Client

    c = Client()
    c.force_login(other_marketer)
    return c


@pytest.fixture
def superuser_client(db, superuser):
    from django.test import Client

    c = Client()
    c.force_login(superuser)
    return c


def queued_tasks(queue_name):
    """(task name, args) of the tasks waiting in a Celery broker queue, taken out of it."""
    from config.celery import app

    taken = []
    with app.connection_for_read() as conn:
        queue = conn.SimpleQueue(queue_name)
        while True:
            try:
                message = queue.get(timeout=0.5)
            except queue.Empty:
                break
            taken.append((message.headers["task"], list(message.decode()[0])))
            message.ack()
        queue.close()
    return taken


@pytest.fixture(autouse=True)
def fast_password_hashing(settings):
    # Users are made in nearly every test; the default PBKDF2 costs about a second each on a busy machine.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
