"""`make run` under honcho: on Ctrl-C honcho sends SIGTERM to each process's group and SIGKILLs whatever is
still running 5 s later. The worker, on the filesystem broker `make run` uses, must stop by itself. With
DATABASE_URL unset the processes honcho starts reach the embedded PostgreSQL that `make run` started in VAR_DIR."""

import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import psycopg
import pytest

from config import embedded_postgres

PROJECT_ROOT = Path(__file__).resolve().parents[1]
# Honcho waits 5 s (KILL_WAIT) before SIGKILL; an idle worker on the filesystem broker takes about 4-5 s
# to close its consumer loop, so the bound here only catches a worker that does not stop on its own.
STOP_WITHIN_SECONDS = 15


def procfile_command(name):
    for line in (PROJECT_ROOT / "Procfile").read_text().splitlines():
        if line.startswith(f"{name}:"):
            return line.split(":", 1)[1].strip()
    raise AssertionError(f"no {name} process in the Procfile")


def start_like_honcho(command, env):
    # As honcho does: the line through /bin/sh, in a session (and process group) of its own.
    return subprocess.Popen(
        ["/bin/sh", "-c", command],
        cwd=PROJECT_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def wait_for_line(process, text, timeout):
    found = threading.Event()
    lines = []

    def read():
        for line in process.stdout:
            lines.append(line)
            if text in line:
                found.set()

    threading.Thread(target=read, daemon=True).start()
    assert found.wait(timeout), f"{text!r} not seen within {timeout}s:\n" + "".join(lines[-40:])
    return lines


@pytest.fixture
def make_run_env(tmp_path):
    """The environment `make run` gives honcho's processes when nothing is configured, with the embedded
    PostgreSQL it starts in their VAR_DIR."""
    bin_dir = str(Path(os.sys.executable).parent)
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")}
    env.update({"PATH": f"{bin_dir}:{os.environ['PATH']}", "VAR_DIR": str(tmp_path)})
    embedded_postgres.start(tmp_path)
    yield env
    embedded_postgres.stop(tmp_path)


@pytest.mark.parametrize("name", ["worker", "bounces"])
def test_the_worker_stops_by_itself_when_honcho_sends_sigterm_to_its_group(make_run_env, name):
    worker = start_like_honcho(procfile_command(name), make_run_env)
    try:
        lines = wait_for_line(worker, "ready.", timeout=60)
        os.killpg(worker.pid, signal.SIGTERM)
        started = time.monotonic()
        try:
            code = worker.wait(timeout=STOP_WITHIN_SECONDS)
        except subprocess.TimeoutExpired:
            raise AssertionError(
                f"the worker still runs {STOP_WITHIN_SECONDS}s after SIGTERM:\n" + "".join(lines[-40:])
            )
        assert code == 0, "".join(lines[-40:])
        assert time.monotonic() - started < STOP_WITHIN_SECONDS
    finally:
        if worker.poll() is None:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait(timeout=10)
        worker.stdout.close()


def periodic_task_names(var_dir):
    with psycopg.connect(
        host=str(embedded_postgres.data_dir(var_dir)), user="postgres", dbname=embedded_postgres.DATABASE_NAME
    ) as connection:
        return {name for (name,) in connection.execute("SELECT name FROM django_celery_beat_periodictask")}


def test_beat_reaches_the_embedded_postgresql_that_make_run_started(make_run_env, tmp_path):
    migrate = subprocess.run(
        [os.sys.executable, "manage.py", "migrate", "--noinput"],
        cwd=PROJECT_ROOT,
        env=make_run_env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert migrate.returncode == 0, migrate.stderr
    assert periodic_task_names(tmp_path) == set()
    beat = start_like_honcho(procfile_command("beat"), make_run_env)
    try:
        lines = wait_for_line(beat, "beat: Starting...", timeout=60)
        # The database scheduler writes its default entry when it starts; wait for it, bounded.
        deadline = time.monotonic() + 60
        while "celery.backend_cleanup" not in periodic_task_names(tmp_path):
            assert beat.poll() is None, "beat exited:\n" + "".join(lines[-40:])
            assert time.monotonic() < deadline, "beat wrote nothing to the embedded PostgreSQL:\n" + "".join(
                lines[-40:]
            )
            time.sleep(0.2)
    finally:
        os.killpg(beat.pid, signal.SIGTERM)
        try:
            beat.wait(timeout=STOP_WITHIN_SECONDS)
        except subprocess.TimeoutExpired:
            os.killpg(beat.pid, signal.SIGKILL)
            beat.wait(timeout=10)
        beat.stdout.close()
