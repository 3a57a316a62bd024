"""Contacts' services queue its tasks by registered name (they cannot import contacts.tasks, which
imports them): a fresh process, as a web process is, must know those names after setup alone."""

import os
import subprocess
import sys
from pathlib import Path

from contacts.imports.jobs import IMPORT_TASK, PREVIEW_TASK
from contacts.services.subscriptions import CONFIRMATION_TASK

ROOT = Path(__file__).resolve().parents[2]
CHECK = """
import django, sys
django.setup()
from celery import current_app
missing = [name for name in sys.argv[1:] if name not in current_app.tasks]
print(",".join(missing))
"""


def test_a_fresh_process_knows_every_task_the_contacts_services_queue_by_name():
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "config.settings"}
    done = subprocess.run(
        [sys.executable, "-c", CHECK, PREVIEW_TASK, IMPORT_TASK, CONFIRMATION_TASK],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == ""
