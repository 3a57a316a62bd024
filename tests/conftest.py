import os
import socket

import pytest
from django.conf import settings

from config import embedded_postgres
from tests.factories import MarketerFactory, SuperuserFactory

STRICT_SERVICES = os.environ.get("STRICT_SERVICES", "") not in ("", "0", "false", "no")
EMBEDDED_POSTGRES_STARTED = pytest.StashKey[bool]()


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


def is_postgres():
    return settings.DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql"


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
def require_postgres():
    if not is_postgres():
        need_service("PostgreSQL: unset SQLITE_PATH, or set DATABASE_URL to a postgres:// URL, to run this test")


@pytest.fixture
def redis_url():
    url = os.environ.get("REDIS_URL", "")
    if not url:
        need_service("Redis: set REDIS_URL to run this test")
    import redis

    try:
        redis.Redis.from_url(url, socket_connect_timeout=2).ping()
    except redis.RedisError as exc:
        need_service(f"Redis at {url} does not answer: {exc}")
    return url


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


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
