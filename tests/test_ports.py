"""`make run` checks its ports before it starts anything: a port another program holds (Mailpit and
MailHog take 1025) is named, with the variable to set, in one line and an exit code, never a traceback."""

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from config import ports
from tests.isolation import free_port

PROJECT_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def taken_port():
    """A port held the way another program holds one: a socket listening on it."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        yield holder.getsockname()[1]


def test_free_ports_pass():
    ports.check({"WEB_PORT": free_port(), "SINK_PORT": free_port()})


def test_a_taken_port_is_named_with_its_variable_and_a_free_one_to_use(taken_port):
    web = free_port()
    with pytest.raises(ports.PortProblem) as raised:
        ports.check({"WEB_PORT": web, "SINK_PORT": taken_port})
    message = str(raised.value)
    assert message.startswith(f"port {taken_port} (SINK_PORT) is taken by another program; run SINK_PORT=")
    assert message.endswith(" make run")
    suggested = int(message.split("SINK_PORT=")[-1].split()[0])
    assert suggested > taken_port and suggested != web and ports.is_free(suggested)
    assert "\n" not in message


def test_a_port_a_server_on_every_address_holds_is_taken():
    # Mailpit listens on 0.0.0.0:1025: a server on 127.0.0.1 could not bind beside it.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as holder:
        holder.bind(("0.0.0.0", 0))
        holder.listen()
        assert not ports.is_free(holder.getsockname()[1])


def test_a_port_left_by_a_closed_connection_is_free():
    # The last `make run`'s connections leave the port in TIME_WAIT. Its servers bound with SO_REUSEADDR
    # (runserver and aiosmtpd do), as the check does, so the port is free again at once.
    with socket.socket() as server:
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        client = socket.create_connection(("127.0.0.1", port))
        accepted, _ = server.accept()
        accepted.close()  # the server side closes first: its end waits in TIME_WAIT
        client.close()
    assert ports.is_free(port)


def test_the_same_port_for_both_is_refused():
    port = free_port()
    with pytest.raises(ports.PortProblem, match=f"WEB_PORT and SINK_PORT are both {port}"):
        ports.check({"WEB_PORT": port, "SINK_PORT": port})


def run_check_ports(**env):
    return subprocess.run(
        [sys.executable, "manage.py", "check_ports"],
        cwd=PROJECT_ROOT,
        env={**os.environ, "LOG_LEVEL": "WARNING", **{k: str(v) for k, v in env.items()}},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_check_ports_exits_1_with_one_line_naming_the_variable(taken_port):
    result = run_check_ports(WEB_PORT=taken_port, SINK_PORT=free_port())
    assert result.returncode == 1
    assert result.stdout == ""
    [line] = result.stderr.splitlines()
    assert line.startswith(f"port {taken_port} (WEB_PORT) is taken by another program; run WEB_PORT=")


def test_check_ports_exits_0_when_both_are_free():
    result = run_check_ports(WEB_PORT=free_port(), SINK_PORT=free_port())
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""


def test_a_port_that_is_no_number_is_named():
    result = run_check_ports(WEB_PORT="eighty", SINK_PORT=free_port())
    assert result.returncode == 1
    assert "WEB_PORT must be a TCP port number from 1 to 65535, not 'eighty'." in result.stderr.splitlines()[-1]


def test_make_run_stops_before_starting_anything_when_a_port_is_taken(taken_port, tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "MAKEFLAGS", "MAKELEVEL")}
    env.update(WEB_PORT=str(free_port()), SINK_PORT=str(taken_port), VAR_DIR=str(tmp_path))
    result = subprocess.run(
        ["make", "--no-print-directory", "run"], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert f"port {taken_port} (SINK_PORT) is taken by another program; run SINK_PORT=" in output
    assert "Traceback" not in output
    # Nothing started: no embedded PostgreSQL was initialised, no process ran.
    assert not (tmp_path / "postgres").exists()
    assert "honcho" not in output and "PostgreSQL" not in output
