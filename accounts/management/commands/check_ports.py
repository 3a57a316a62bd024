import sys

from django.conf import settings
from django.core.management.base import BaseCommand

from config import ports


class Command(BaseCommand):
    help = (
        "Exit 1 with one line naming the variable to change (WEB_PORT, SINK_PORT) when a port `make run` "
        "listens on is taken; `make run` runs it before it starts anything."
    )

    def handle(self, *args, **options):
        try:
            ports.check({"WEB_PORT": settings.WEB_PORT, "SINK_PORT": settings.SINK_PORT})
        except ports.PortProblem as problem:
            # One line and an exit code, never a traceback: the person reads it and sets the variable.
            self.stderr.write(str(problem))
            sys.exit(1)
