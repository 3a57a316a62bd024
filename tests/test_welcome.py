"""The last lines `make run` prints (the Procfile's `welcome` process): once the login page answers and
the sink listens, the site's address, the demo marketer's password and how to get a superuser; then it
waits for honcho's SIGTERM and exits 0, so it never stops the others."""

import os
import signal
import socket
import subprocess
import sys
import threading
import uuid
from io import StringIO
from pathlib import Path
from urllib.parse import quote, urlsplit

import pytest
from django.conf import global_settings
from django.core.management import call_command
from django.db import connection

from accounts.models import User
from campaigns.management.commands.welcome import Command as Welcome
from tests.factories import SuperuserFactory

PROJECT_ROOT = Path(__file__).resolve().parents[1]
READY_WITHIN_SECONDS = 120


def database_url_for_subprocesses():
    """A DATABASE_URL naming the database this test runs on (test_<name>, not <name>)."""
    db = connection.settings_dict
    user = quote(db["USER"] or "", safe="")
    password = quote(str(db["PASSWORD"] or ""), safe="")
    credentials = f"{user}:{password}@" if password else (f"{user}@" if user else "")
    host = quote(db["HOST"] or "", safe="")
    port = f":{db['PORT']}" if db["PORT"] else ""
    return f"postgres://{credentials}{host}{port}/{quote(db['NAME'], safe='')}?application_name=welcome-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def own_var_dir(settings, tmp_path):
    settings.VAR_DIR = tmp_path
    return tmp_path


@pytest.fixture
def sink_port():
    with socket.socket() as sink:
        sink.bind(("127.0.0.1", 0))
        sink.listen()
        yield sink.getsockname()[1]


def demo_password(output):
    return output.split("password: ")[1].split()[0]


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_welcome_prints_the_banner_once_the_site_answers_and_waits_for_sigterm(
    live_server, own_var_dir, sink_port, settings
):
    # The subprocess checks the password with the project's hashers, not the tests' fast one.
    settings.PASSWORD_HASHERS = global_settings.PASSWORD_HASHERS
    out = StringIO()
    call_command("setup_demo", stdout=out)
    password = demo_password(out.getvalue())
    env = {
        **os.environ,
        "DATABASE_URL": database_url_for_subprocesses(),
        "VAR_DIR": str(own_var_dir),
        "WEB_PORT": str(urlsplit(live_server.url).port),
        "SINK_PORT": str(sink_port),
        "PYTHONUNBUFFERED": "1",
    }
    env.pop("SITE_URL", None)
    welcome = subprocess.Popen(
        [sys.executable, "manage.py", "welcome"],
        cwd=PROJECT_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    lines, done = [], threading.Event()

    def read():
        for line in welcome.stdout:
            lines.append(line)
            if line.startswith("─") and sum(1 for seen in lines if seen.startswith("─")) == 2:
                done.set()

    threading.Thread(target=read, daemon=True).start()
    try:
        assert done.wait(READY_WITHIN_SECONDS), "no banner:\n" + "".join(lines)
        banner = "".join(lines)
        assert f"Campaign Manager is ready: http://127.0.0.1:{env['WEB_PORT']}/admin/" in banner
        assert f"demo marketer   demo / {password}   (kept in {own_var_dir / 'demo-password'})" in banner
        assert "make superuser ADMIN_EMAIL=" in banner  # none yet
        assert f"127.0.0.1:{sink_port}" in banner
        assert welcome.poll() is None, "welcome ended: honcho would stop every process"
        os.killpg(welcome.pid, signal.SIGTERM)
        assert welcome.wait(timeout=30) == 0
    finally:
        if welcome.poll() is None:
            os.killpg(welcome.pid, signal.SIGKILL)
            welcome.wait(timeout=10)


@pytest.mark.django_db
def test_the_banner_says_when_the_demo_password_was_changed_and_how_to_reset_it(own_var_dir, settings):
    call_command("setup_demo", stdout=StringIO())
    demo = User.objects.get(username="demo")
    demo.set_password("a password I chose myself 42")
    demo.save()
    banner = "\n".join(Welcome().banner())
    assert "demo / changed since it was generated (reset: make demo-password" in banner


@pytest.mark.django_db
def test_the_banner_tells_a_superuser_where_sign_ups_wait_once_there_is_one(own_var_dir):
    SuperuserFactory(username="root")
    banner = "\n".join(Welcome().banner())
    assert "make superuser" not in banner
    assert "Waiting for approval" in banner
