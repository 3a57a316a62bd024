"""`make run` under honcho: on Ctrl-C honcho sends SIGTERM to each process's group and SIGKILLs whatever is
still running 5 s later. The worker, on the filesystem broker `make run` uses, must stop by itself."""

import os
import signal
import subprocess
import threading
import time
from pathlib import Path

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
    return subprocess.Popen(["/bin/sh", "-c", command], cwd=PROJECT_ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)


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


def test_the_worker_stops_by_itself_when_honcho_sends_sigterm_to_its_group(tmp_path):
    bin_dir = str(Path(os.sys.executable).parent)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "VAR_DIR": str(tmp_path),
           "SQLITE_PATH": str(tmp_path / "db.sqlite3"), "DATABASE_URL": "", "REDIS_URL": ""}
    worker = start_like_honcho(procfile_command("worker"), env)
    try:
        lines = wait_for_line(worker, "ready.", timeout=60)
        os.killpg(worker.pid, signal.SIGTERM)
        started = time.monotonic()
        try:
            code = worker.wait(timeout=STOP_WITHIN_SECONDS)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"the worker still runs {STOP_WITHIN_SECONDS}s after SIGTERM:\n" + "".join(lines[-40:]))
        assert code == 0, "".join(lines[-40:])
        assert time.monotonic() - started < STOP_WITHIN_SECONDS
    finally:
        if worker.poll() is None:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait(timeout=10)
        worker.stdout.close()
