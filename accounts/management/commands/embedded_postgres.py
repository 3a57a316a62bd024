import signal
import subprocess

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import BaseCommand, CommandError

from config import embedded_postgres


class Command(BaseCommand):
    help = (
        "The embedded PostgreSQL in VAR_DIR (used when DATABASE_URL is unset): start, stop, status, or "
        "run -- COMMAND, which runs COMMAND with the server up and stops the server afterwards if it started it."
    )

    def add_arguments(self, parser):
        parser.add_argument("action", choices=["start", "stop", "status", "run"])
        parser.add_argument("command", nargs="*", help="For run: the command to run (after --).")

    def handle(self, *args, action, command, **options):
        if action == "run" and not command:
            raise CommandError("run needs a command: manage.py embedded_postgres run -- COMMAND [ARGS...]")
        if action != "run" and command:
            raise CommandError(f"{action} takes no command")
        if not self._embedded():
            if action == "run":
                return self._run(command)
            self._say("DATABASE_URL is set: the embedded PostgreSQL is not used.")
            return
        getattr(self, f"_{action}")(command)

    def _embedded(self):
        return embedded_postgres.is_used(settings.DATABASES["default"], settings.VAR_DIR)

    def _start(self, command=None):
        try:
            started = embedded_postgres.start(settings.VAR_DIR)
        except ImproperlyConfigured as exc:
            raise CommandError(str(exc)) from exc
        where = embedded_postgres.data_dir(settings.VAR_DIR)
        self._say(f"PostgreSQL {'started' if started else 'already running'}, socket in {where}")
        return started

    def _stop(self, command=None):
        stopped = embedded_postgres.stop(settings.VAR_DIR)
        self._say("PostgreSQL stopped" if stopped else "PostgreSQL was not running")

    def _status(self, command=None):
        running = embedded_postgres.is_running(settings.VAR_DIR)
        where = embedded_postgres.data_dir(settings.VAR_DIR)
        self._say(f"PostgreSQL {'running' if running else 'not running'}, data in {where}")
        if not running:
            raise SystemExit(3)  # like pg_ctl status

    def _run(self, command):
        started = self._start() if self._embedded() else False
        try:
            returncode = run_forwarding_signals(command)
        finally:
            # A server that ran before us belongs to someone else (another `make run`, a test session).
            if started:
                self._stop()
        if returncode:
            # A command killed by a signal exits like a shell reports it: 128 + the signal's number.
            raise SystemExit(128 - returncode if returncode < 0 else returncode)

    def _say(self, line):
        # Under make and honcho stdout is a pipe: flush so the line shows before the command's output.
        self.stdout.write(line)
        self.stdout.flush()


def run_forwarding_signals(command):
    """Run command and return its exit code. Ctrl-C reaches it from the terminal (same process group),
    so SIGINT is ignored here; a SIGTERM sent to this process (make, timeout) is passed on to it."""
    try:
        child = subprocess.Popen(command)
    except OSError as exc:
        raise CommandError(f"cannot run {command[0]}: {exc}") from exc
    previous_int = signal.signal(signal.SIGINT, signal.SIG_IGN)
    previous_term = signal.signal(signal.SIGTERM, lambda *a: child.send_signal(signal.SIGTERM))
    try:
        return child.wait()
    finally:
        signal.signal(signal.SIGINT, previous_int)
        signal.signal(signal.SIGTERM, previous_term)
