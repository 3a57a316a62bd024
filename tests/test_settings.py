"""config/settings.py read from the environment, each case in a fresh Python process.

Settings are evaluated once per process, so every case starts its own interpreter
with a controlled environment; VAR_DIR points at a temporary folder so nothing
is written in the repository's var/.
"""

import json
import os
import secrets
import subprocess
import sys
import textwrap
from pathlib import Path

from cryptography.fernet import Fernet

from config import embedded_postgres
from tests.conftest import need_service

PROJECT_ROOT = Path(__file__).resolve().parents[1]

# Everything settings.py reads; each case sets only what it means to.
SETTINGS_VARIABLES = (
    "DJANGO_ENV",
    "SECRET_KEY",
    "DEBUG",
    "ALLOWED_HOSTS",
    "SITE_URL",
    "CSRF_TRUSTED_ORIGINS",
    "DATABASE_URL",
    "DATABASE_POOL",
    "DATABASE_POOL_MAX",
    "REDIS_URL",
    "FIELD_ENCRYPTION_KEYS",
    "SIGNUP_ENABLED",
    "SIGNUP_CONFIRM_MAX_AGE",
    "STATIC_ROOT",
    "MEDIA_ROOT",
    "EMAIL_BACKEND",
    "SMTP_SINK_DIR",
    "SMTP_ALLOW_PRIVATE_HOSTS",
    "SECURE_SSL_REDIRECT",
    "SECURE_HSTS_SECONDS",
    "CELERY_TASK_ALWAYS_EAGER",
    "VAR_DIR",
)


def clean_env(tmp_path, **extra):
    env = {k: v for k, v in os.environ.items() if k not in SETTINGS_VARIABLES}
    env["DJANGO_SETTINGS_MODULE"] = "config.settings"
    env["VAR_DIR"] = str(tmp_path / "var")
    env.update(extra)
    return env


def run(args, env, timeout=120):
    return subprocess.run(
        [sys.executable, *args], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=timeout
    )


def run_python(code, env):
    return run(["-c", textwrap.dedent(code)], env)


def settings_as_json(env, expression):
    """Evaluate `expression` (with `settings` set up) in a fresh process and return it."""
    result = run_python(
        f"""
        import json, django
        django.setup()
        from django.conf import settings
        print(json.dumps({expression}, default=str))
        """,
        env,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def production_env(tmp_path, **extra):
    return clean_env(
        tmp_path,
        DJANGO_ENV="production",
        SECRET_KEY=secrets.token_urlsafe(64),
        FIELD_ENCRYPTION_KEYS=Fernet.generate_key().decode(),
        ALLOWED_HOSTS="mail.example.com",
        SITE_URL="https://mail.example.com",
        REDIS_URL="redis://127.0.0.1:6379/3",
        **extra,
    )


# --- production refuses to start without its secrets ------------------------------


def test_production_without_secret_key_does_not_start(tmp_path):
    env = clean_env(tmp_path, DJANGO_ENV="production", FIELD_ENCRYPTION_KEYS=Fernet.generate_key().decode())
    result = run(["manage.py", "check"], env)
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert "SECRET_KEY" in result.stderr
    assert "FIELD_ENCRYPTION_KEYS" not in result.stderr.splitlines()[-1]


def test_production_without_site_url_or_allowed_hosts_does_not_start(tmp_path):
    env = production_env(tmp_path)
    del env["SITE_URL"], env["ALLOWED_HOSTS"]
    result = run_python("import django; django.setup()", env)
    assert result.returncode != 0
    assert "SITE_URL, ALLOWED_HOSTS" in result.stderr.splitlines()[-1]


def test_production_without_redis_url_does_not_start(tmp_path):
    # The rate limits of the public forms count in the cache: per process without Redis.
    env = production_env(tmp_path)
    del env["REDIS_URL"]
    result = run(["manage.py", "check"], env)
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert result.stderr.splitlines()[-1].endswith("needs these environment variables set: REDIS_URL")


def test_production_without_encryption_keys_does_not_start(tmp_path):
    env = clean_env(tmp_path, DJANGO_ENV="production", SECRET_KEY=secrets.token_urlsafe(64))
    result = run_python("import django; django.setup()", env)
    assert result.returncode != 0
    assert "FIELD_ENCRYPTION_KEYS" in result.stderr.splitlines()[-1]
    # The development key file is never made for production.
    assert not (tmp_path / "var" / "field_encryption.key").exists()


def test_production_with_its_secrets_passes_the_deploy_check(tmp_path):
    result = run(["manage.py", "check", "--deploy"], production_env(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout
    assert "WARNINGS" not in result.stdout + result.stderr


def test_production_settings_are_hardened(tmp_path):
    values = settings_as_json(
        production_env(tmp_path),
        "{k: getattr(settings, k) for k in ('DEBUG', 'SESSION_COOKIE_SECURE', 'CSRF_COOKIE_SECURE', "
        "'SECURE_SSL_REDIRECT', 'SMTP_ALLOW_PRIVATE_HOSTS', 'ALLOWED_HOSTS')}",
    )
    assert values == {
        "DEBUG": False,
        "SESSION_COOKIE_SECURE": True,
        "CSRF_COOKIE_SECURE": True,
        "SECURE_SSL_REDIRECT": True,
        "SMTP_ALLOW_PRIVATE_HOSTS": False,
        "ALLOWED_HOSTS": ["mail.example.com"],
    }


def test_development_defaults_run_without_any_environment(tmp_path):
    values = settings_as_json(
        clean_env(tmp_path), "[settings.PRODUCTION, settings.DEBUG, settings.SMTP_ALLOW_PRIVATE_HOSTS]"
    )
    # The SMTP destination guard is on without DJANGO_ENV=production too: it fails closed.
    assert values == [False, True, False]
    # The development encryption key lives in VAR_DIR, readable by its owner only.
    key_file = tmp_path / "var" / "field_encryption.key"
    assert key_file.exists()
    assert key_file.stat().st_mode & 0o077 == 0


def test_private_smtp_hosts_are_allowed_only_when_asked(tmp_path):
    for environment in (
        clean_env(tmp_path, SMTP_ALLOW_PRIVATE_HOSTS="1"),
        production_env(tmp_path, SMTP_ALLOW_PRIVATE_HOSTS="1"),
    ):
        assert settings_as_json(environment, "settings.SMTP_ALLOW_PRIVATE_HOSTS") is True
    assert (
        settings_as_json(clean_env(tmp_path, SMTP_ALLOW_PRIVATE_HOSTS="0"), "settings.SMTP_ALLOW_PRIVATE_HOSTS")
        is False
    )


def test_debug_off_with_the_built_in_secret_key_does_not_start(tmp_path):
    # Without DJANGO_ENV=production, the public development key would sign every tracking,
    # unsubscribe and subscription token of a server that is no development server.
    built_in_key = "django-insecure-development-key-never-use-in-production"
    for environment in (clean_env(tmp_path, DEBUG="0"), clean_env(tmp_path, DEBUG="0", SECRET_KEY=built_in_key)):
        result = run(["manage.py", "check"], environment)
        assert result.returncode != 0
        last_line = result.stderr.splitlines()[-1]
        assert "ImproperlyConfigured" in last_line
        assert "DEBUG is off but SECRET_KEY is not set" in last_line


def test_debug_off_with_a_secret_key_of_its_own_starts(tmp_path):
    environment = clean_env(tmp_path, DEBUG="0", SECRET_KEY=secrets.token_urlsafe(64))
    assert settings_as_json(environment, "[settings.DEBUG, settings.PRODUCTION]") == [False, False]


# --- database -------------------------------------------------------------------


def test_without_database_url_the_database_is_the_embedded_postgresql_in_var_dir(tmp_path):
    database = settings_as_json(clean_env(tmp_path), 'settings.DATABASES["default"]')
    assert database["ENGINE"] == "django.db.backends.postgresql"
    assert database["NAME"] == "campaigns"
    # A directory as HOST: libpq connects over the unix socket there, never over TCP.
    assert Path(database["HOST"]) == tmp_path / "var" / "postgres"
    assert database["PORT"] == ""
    assert database["OPTIONS"]["pool"]["max_size"] >= 1
    # Reading the settings starts nothing.
    assert not (tmp_path / "var" / "postgres").exists()


def test_a_relative_var_dir_still_gives_libpq_an_absolute_socket_directory(tmp_path):
    relative = os.path.relpath(tmp_path / "var", PROJECT_ROOT)
    database = settings_as_json(clean_env(tmp_path, VAR_DIR=relative), 'settings.DATABASES["default"]')
    assert database["HOST"].startswith("/")
    assert Path(database["HOST"]).resolve() == (tmp_path / "var" / "postgres").resolve()


def embedded(tmp_path, action, *command, **extra):
    return run(["manage.py", "embedded_postgres", action, *command], clean_env(tmp_path, **extra))


SERVER_FACTS = """
import json, django
django.setup()
from django.db import connection
with connection.cursor() as cursor:
    cursor.execute(
        "SELECT current_setting('server_version_num')::int, current_setting('listen_addresses'),"
        " current_setting('unix_socket_directories'), current_setting('data_directory'), current_database()"
    )
    print(json.dumps([*cursor.fetchone(), connection.pool is not None]))
"""


def test_the_embedded_postgresql_serves_every_process_that_shares_var_dir_over_its_socket_only(tmp_path):
    var = tmp_path / "var"
    try:
        started = embedded(tmp_path, "start")
        assert started.returncode == 0, started.stderr
        assert f"PostgreSQL started, socket in {var / 'postgres'}" in started.stdout
        # A second start finds it running (make run and a test session may share one server).
        again = embedded(tmp_path, "start")
        assert again.returncode == 0, again.stderr
        assert "already running" in again.stdout
        # A fresh process, like those honcho starts, finds it from VAR_DIR alone.
        result = run_python(SERVER_FACTS, clean_env(tmp_path))
        assert result.returncode == 0, result.stderr
        facts = json.loads(result.stdout.splitlines()[-1])
        version, listen_addresses, socket_dirs, data_directory, database, pooled = facts
        assert version >= 180000
        assert listen_addresses == ""  # no TCP port: two checkouts on one machine never collide
        assert Path(socket_dirs) == var / "postgres"
        assert Path(data_directory) == var / "postgres"
        assert database == "campaigns"
        assert pooled  # through psycopg's pool, as with DATABASE_URL
        assert embedded(tmp_path, "status").returncode == 0
    finally:
        stopped = embedded(tmp_path, "stop")
    assert stopped.returncode == 0, stopped.stderr
    assert "PostgreSQL stopped" in stopped.stdout
    status = embedded(tmp_path, "status")
    assert status.returncode == 3
    assert "not running" in status.stdout
    assert not (var / "postgres" / ".s.PGSQL.5432").exists()


def test_stop_works_after_a_folder_above_the_data_directory_was_made_private_again(tmp_path):
    # As pytest does to /tmp/pytest-of-USER when another session starts while the server runs.
    try:
        assert embedded(tmp_path, "start").returncode == 0
        tmp_path.chmod(0o700)
        stopped = embedded(tmp_path, "stop")
        assert stopped.returncode == 0, stopped.stderr
        assert "PostgreSQL stopped" in stopped.stdout
    finally:
        embedded_postgres.stop(tmp_path / "var")


def test_run_stops_the_server_it_started_and_passes_the_exit_code_on(tmp_path):
    result = embedded(tmp_path, "run", "--", sys.executable, "-c", "import sys; sys.exit(7)")
    assert result.returncode == 7, result.stderr
    assert "PostgreSQL started" in result.stdout
    assert "PostgreSQL stopped" in result.stdout
    assert embedded(tmp_path, "status").returncode == 3


def test_run_reports_a_command_killed_by_a_signal_as_a_shell_does(tmp_path):
    result = embedded(
        tmp_path, "run", "--", sys.executable, "-c", "import os, signal; os.kill(os.getpid(), signal.SIGTERM)"
    )
    assert result.returncode == 128 + 15, result.stderr
    assert "PostgreSQL stopped" in result.stdout


def test_run_leaves_running_a_server_it_did_not_start(tmp_path):
    try:
        assert embedded(tmp_path, "start").returncode == 0
        result = embedded(tmp_path, "run", "--", sys.executable, "-c", "pass")
        assert result.returncode == 0, result.stderr
        assert "already running" in result.stdout
        assert embedded(tmp_path, "status").returncode == 0
    finally:
        embedded(tmp_path, "stop")


def test_a_var_dir_too_long_for_a_unix_socket_is_refused_with_a_clear_error(tmp_path):
    long_var = tmp_path / ("v" * 100)
    result = embedded(tmp_path, "start", VAR_DIR=str(long_var))
    assert result.returncode != 0
    assert "longer than a unix socket allows" in result.stderr
    assert "set VAR_DIR to a shorter folder" in result.stderr
    assert not (long_var / "postgres").exists()


def test_with_database_url_the_embedded_postgresql_is_not_used(tmp_path):
    url = "postgres://postgres@127.0.0.1:5432/unused"
    database = settings_as_json(clean_env(tmp_path, DATABASE_URL=url), 'settings.DATABASES["default"]')
    assert (database["HOST"], database["PORT"], database["NAME"]) == ("127.0.0.1", 5432, "unused")
    result = embedded(tmp_path, "start", DATABASE_URL=url)
    assert result.returncode == 0, result.stderr
    assert "the embedded PostgreSQL is not used" in result.stdout
    assert not (tmp_path / "var" / "postgres").exists()


def test_a_sqlite_database_url_is_refused_as_postgresql_only(tmp_path):
    env = clean_env(tmp_path, DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}")
    result = run(["manage.py", "check"], env)
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert "PostgreSQL only" in result.stderr.splitlines()[-1]
    assert not (tmp_path / "db.sqlite3").exists()


def test_with_database_url_postgresql_uses_a_connection_pool(tmp_path):
    url = os.environ.get("DATABASE_URL", "")
    if not url:
        need_service("set DATABASE_URL to a postgres:// URL to run this test")
    result = run_python(
        """
        import json, django
        django.setup()
        from django.conf import settings
        from django.db import connection
        connection.ensure_connection()
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            one = cursor.fetchone()[0]
        db = settings.DATABASES["default"]
        print(json.dumps({
            "engine": db["ENGINE"], "pool": db["OPTIONS"].get("pool"), "conn_max_age": db["CONN_MAX_AGE"],
            "has_pool": connection.pool is not None, "one": one,
        }))
        """,
        clean_env(tmp_path, DATABASE_URL=url),
    )
    assert result.returncode == 0, result.stderr
    values = json.loads(result.stdout.strip().splitlines()[-1])
    assert values["engine"] == "django.db.backends.postgresql"
    assert isinstance(values["pool"], dict) and values["pool"]["max_size"] >= 1
    assert values["conn_max_age"] == 0  # Django refuses a pool with persistent connections
    assert values["has_pool"] is True
    assert values["one"] == 1


# --- Celery broker ---------------------------------------------------------------


CELERY_BROKER = """
import json
from config.celery import app
print(json.dumps({"broker": app.conf.broker_url, "options": app.conf.broker_transport_options}))
"""


def test_without_redis_url_celery_uses_the_filesystem_broker_in_var_dir(tmp_path):
    result = run_python(CELERY_BROKER, clean_env(tmp_path))
    assert result.returncode == 0, result.stderr
    values = json.loads(result.stdout.strip().splitlines()[-1])
    assert values["broker"] == "filesystem://"
    queue_dir = Path(values["options"]["data_folder_in"])
    assert queue_dir.is_dir()
    assert queue_dir.is_relative_to(tmp_path / "var")


def test_with_redis_url_celery_uses_redis(tmp_path):
    redis_url = "redis://127.0.0.1:6379/3"
    result = run_python(CELERY_BROKER, clean_env(tmp_path, REDIS_URL=redis_url))
    assert result.returncode == 0, result.stderr
    values = json.loads(result.stdout.strip().splitlines()[-1])
    assert values["broker"] == redis_url
    assert not (tmp_path / "var" / "broker").exists()
