"""Each test run has services of its own, so two runs on one machine (or a running system) never share a
queue, a key or a test database.

Loaded with `-p tests.isolation` (pytest.ini), before pytest-django loads the settings: the settings derive
the broker, the cache and the runtime folder from the environment once per process.

- REDIS_URL set (the switch that turns the Redis tests on): the run starts a redis-server of its own on a
  free loopback port and points REDIS_URL at it. The broker, the cache (rate limits), the dashboard's
  queue length and every Celery worker and beat the e2e tests start use it, so no worker elsewhere takes
  this run's tasks and a FLUSHDB reaches nothing but this run. The server REDIS_URL named is not touched.
- VAR_DIR: a fresh folder of the run's own (the filesystem broker's queues, the development key, media).
- The PostgreSQL test database: test_<name> while no other run holds it, else test_<name>_run2, and so
  on, each claimed by an advisory lock held for the run's life (`own_test_database`, used by
  tests/conftest.py before pytest-django creates the database).
"""

import contextlib
import ctypes
import hashlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

REDIS_SERVER = "redis-server"
REDIS_START_SECONDS = 15
# A free port can be taken by someone else between finding it and redis-server binding it: try another.
REDIS_PORT_ATTEMPTS = 5
TEST_DATABASE_SLOTS = 50
PR_SET_PDEATHSIG = 1

# The REDIS_URL the run was started with (the tests never use it: tests/test_isolation.py proves it),
# and the run's own server that replaces it.
shared_redis_url = ""
run_redis_url = ""
# What the test database would be called without isolation; the run's own is this or this_runN.
test_database_base_name = ""


@pytest.hookimpl(wrapper=True)
def pytest_load_initial_conftests(early_config, parser, args):
    """Runs around pytest-django's implementation of this hook, which loads the settings."""
    global shared_redis_url, run_redis_url
    namespace = early_config.known_args_namespace
    if not (getattr(namespace, "help", False) or getattr(namespace, "version", False)):
        var_dir = run_var_dir()
        early_config.add_cleanup(lambda: shutil.rmtree(var_dir, ignore_errors=True))
        os.environ["VAR_DIR"] = str(var_dir)
        shared_redis_url = os.environ.get("REDIS_URL", "")
        if shared_redis_url:
            server = PrivateRedis(var_dir / "redis")
            early_config.add_cleanup(server.stop)  # cleanups run last-in first-out: before the rmtree
            run_redis_url = os.environ["REDIS_URL"] = server.start()
    return (yield)


def run_var_dir():
    """A fresh folder, inside the VAR_DIR the run was given if any."""
    parent = os.environ.get("VAR_DIR") or None
    if parent:
        Path(parent).mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix="test-run-", dir=parent))


# --- Redis -------------------------------------------------------------------------------


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _parent_death_signal():
    """Linux's prctl, or None elsewhere: resolved here, since the child may only call it."""
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None

    def end_with_parent():
        prctl(PR_SET_PDEATHSIG, signal.SIGTERM)

    return end_with_parent


class PrivateRedis:
    """A redis-server on a free loopback port, its files in `directory`. On Linux it is sent SIGTERM when
    the process that started it ends, however that ends, so no server outlives a killed run."""

    def __init__(self, directory):
        self.directory = Path(directory)
        self.process = None
        self.url = None

    @property
    def log_path(self):
        return self.directory / "redis.log"

    def start(self):
        executable = shutil.which(REDIS_SERVER)
        if not executable:
            raise pytest.UsageError(
                "REDIS_URL is set, so the tests start a redis-server of their own, and none is installed: "
                "install it (Debian: apt-get install redis-server), or unset REDIS_URL to skip the Redis tests."
            )
        self.directory.mkdir(parents=True, exist_ok=True)
        for _ in range(REDIS_PORT_ATTEMPTS):
            port = free_port()
            if self._launch(executable, port):
                self.url = f"redis://127.0.0.1:{port}/0"
                return self.url
        raise pytest.UsageError(f"redis-server did not start; its log ({self.log_path}):\n{self.log_text()}")

    def _launch(self, executable, port):
        self.process = subprocess.Popen(
            [
                executable,
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.directory),
                "--logfile",
                str(self.log_path),
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=_parent_death_signal(),
        )
        deadline = time.monotonic() + REDIS_START_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return False  # the port was taken meanwhile
            if self._answers(port):
                return True
            time.sleep(0.05)
        self.stop()
        return False

    def _answers(self, port):
        """True once the server on `port` answers and is this one (not another that took the port first)."""
        import redis

        client = redis.Redis(host="127.0.0.1", port=port, socket_connect_timeout=1, socket_timeout=1)
        try:
            return client.info("server")["process_id"] == self.process.pid
        except redis.RedisError:
            return False
        finally:
            client.close()

    def stop(self):
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)

    def log_text(self):
        try:
            return self.log_path.read_text(errors="replace")[-3000:]
        except FileNotFoundError:
            return ""


# --- PostgreSQL ----------------------------------------------------------------------------


@dataclass
class TestDatabaseClaim:
    """A test database name that no other run uses while `connection` (holding its lock) is open."""

    __test__ = False  # not a test class, whatever its name

    name: str
    connection: object

    def release(self):
        self.connection.close()


def advisory_lock_key(name):
    digest = hashlib.sha256(f"campaigns test database {name}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def _lock_connection(db_settings):
    """A connection to the `postgres` database, as Django's own for creating test databases (an advisory
    lock is of one database: every run must take it in the same one), else to the configured one."""
    import psycopg

    params = {
        key: db_settings[setting]
        for key, setting in (("host", "HOST"), ("port", "PORT"), ("user", "USER"), ("password", "PASSWORD"))
        if db_settings.get(setting)
    }
    try:
        return psycopg.connect(dbname="postgres", application_name="campaigns-test-run", autocommit=True, **params)
    except psycopg.OperationalError:
        return psycopg.connect(
            dbname=db_settings["NAME"], application_name="campaigns-test-run", autocommit=True, **params
        )


def claim_test_database(db_settings, base_name):
    """The first of base_name, base_name_run2, ... that no other run holds, held until released.

    An advisory lock ends with its session, so a run that was killed leaves its name free; the next run
    to claim it finds the old database and pytest-django recreates it."""
    connection = _lock_connection(db_settings)
    for slot in range(1, TEST_DATABASE_SLOTS + 1):
        name = base_name if slot == 1 else f"{base_name}_run{slot}"
        if connection.execute("SELECT pg_try_advisory_lock(%s)", [advisory_lock_key(name)]).fetchone()[0]:
            return TestDatabaseClaim(name=name, connection=connection)
    connection.close()
    raise RuntimeError(f"{TEST_DATABASE_SLOTS} test runs hold a test database of {base_name} already")


@contextlib.contextmanager
def own_test_database(db_settings):
    """Names the test database of `db_settings` (a DATABASES entry) for this run alone while in the block."""
    global test_database_base_name
    test_settings = db_settings.setdefault("TEST", {})
    test_database_base_name = test_settings.get("NAME") or f"test_{db_settings['NAME']}"
    claim = claim_test_database(db_settings, test_database_base_name)
    test_settings["NAME"] = claim.name
    try:
        yield claim.name
    finally:
        claim.release()
