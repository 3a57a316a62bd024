"""Two test runs on one machine, or a test run beside a running system, share no queue, key or test
database (tests/isolation.py)."""

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import redis
from django.conf import settings
from django.core.cache import cache
from django.db import connection

from config.celery import app
from tests import isolation

PROJECT_ROOT = Path(__file__).resolve().parents[1]
STOP_SECONDS = 15
RUN_SECONDS = 240  # below pytest-timeout's 300 s, so the runs' output is shown


def shared_redis():
    """The server and database REDIS_URL named when the run started (a running system's, say)."""
    return redis.Redis.from_url(isolation.shared_redis_url, socket_connect_timeout=2)


def test_the_runtime_folder_is_the_runs_own():
    """A fresh folder (under the VAR_DIR given, if any). Without Redis it holds the filesystem broker's
    queues, which a system running from the same checkout (`make run`: var/) would share otherwise."""
    assert settings.VAR_DIR.name.startswith("test-run-") and settings.VAR_DIR.is_dir()
    if not settings.REDIS_URL:
        assert Path(settings.CELERY_BROKER_TRANSPORT_OPTIONS["data_folder_in"]).is_relative_to(settings.VAR_DIR)


@pytest.mark.redis
def test_the_broker_and_the_cache_are_not_the_redis_that_REDIS_URL_names(redis_url):
    key, queue = f"isolation-{uuid.uuid4().hex}", f"isolation-{uuid.uuid4().hex}"
    cache.set(key, "this run's", timeout=60)
    app.send_task("campaigns.send_batch", ("isolation-probe",), queue=queue)
    ours, theirs = redis.Redis.from_url(redis_url), shared_redis()
    try:
        assert ours.llen(queue) == 1 and ours.exists(cache.make_key(key))
        assert not theirs.exists(queue) and not theirs.exists(cache.make_key(key))
        assert settings.CELERY_BROKER_URL == settings.REDIS_URL == redis_url != isolation.shared_redis_url
    finally:
        ours.delete(queue, cache.make_key(key))
        ours.close()
        theirs.close()


@pytest.mark.redis
def test_a_runs_redis_server_ends_when_the_run_is_killed(redis_url, tmp_path):
    if not sys.platform.startswith("linux"):
        pytest.skip("the parent-death signal is Linux's")
    starter = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from tests.isolation import PrivateRedis; "
            "print(PrivateRedis(sys.argv[1]).start(), flush=True); time.sleep(600)",
            str(tmp_path),
        ],
        cwd=PROJECT_ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        url = starter.stdout.readline().strip()
        server = redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1)
        assert server.ping()
    finally:
        starter.send_signal(signal.SIGKILL)
        starter.wait(STOP_SECONDS)
    deadline = time.monotonic() + STOP_SECONDS
    while True:
        try:
            server.ping()
        except redis.ConnectionError:
            break  # nobody listens there any more
        assert time.monotonic() < deadline, f"the redis-server at {url} outlived the run that started it"
        time.sleep(0.1)


def test_a_claimed_test_database_name_is_nobody_elses_until_released(db):
    db_settings = settings.DATABASES["default"]
    base = f"test_isolation_{uuid.uuid4().hex[:8]}"
    first = isolation.claim_test_database(db_settings, base)
    second = isolation.claim_test_database(db_settings, base)
    try:
        assert (first.name, second.name) == (base, f"{base}_run2")
        first.release()
        third = isolation.claim_test_database(db_settings, base)
        assert third.name == base  # a run that ended (or was killed) leaves its name to the next
        third.release()
    finally:
        first.release()
        second.release()


def test_this_runs_test_database_is_held_against_another_run(db):
    this_run = connection.settings_dict["NAME"]
    assert this_run.startswith(isolation.test_database_base_name)
    other = isolation.claim_test_database(settings.DATABASES["default"], isolation.test_database_base_name)
    try:
        assert other.name != this_run
    finally:
        other.release()


@pytest.mark.e2e
@pytest.mark.redis
def test_two_runs_started_at_once_both_pass(redis_url, tmp_path):
    """tests/isolation_probe.py in two pytest runs given the same DATABASE_URL and REDIS_URL, which meet
    inside their test; each publishes, caches and writes, and finds only its own."""
    env = {
        **os.environ,
        "REDIS_URL": isolation.shared_redis_url,
        "STRICT_SERVICES": "1",
        "ISOLATION_PROBE_DIR": str(tmp_path),
    }
    logs = [tmp_path / f"run-{n}.log" for n in (1, 2)]
    runs = []
    for log in logs:
        with open(log, "wb") as output:
            runs.append(
                subprocess.Popen(
                    [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/isolation_probe.py"],
                    cwd=PROJECT_ROOT,
                    env=env,
                    stdout=output,
                    stderr=subprocess.STDOUT,
                )
            )
    try:
        for run in runs:
            run.wait(timeout=RUN_SECONDS)
    finally:
        for run in runs:
            if run.poll() is None:
                run.kill()
                run.wait()
    assert [run.returncode for run in runs] == [0, 0], "\n\n".join(log.read_text(errors="replace") for log in logs)
