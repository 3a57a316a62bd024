"""config/celery.py: a prefork worker keeps its PostgreSQL connection across tasks.

Celery's own Django fixup, as a prefork worker installs it, runs around six tasks here;
without CELERY_DB_REUSE_MAX it closed the whole connection pool before and after each task,
and every 50-message batch opened a new PostgreSQL backend.
"""

from types import SimpleNamespace

import pytest
from celery import signals
from celery.fixups.django import DjangoWorkerFixup
from django.db import connection

from config.celery import app
from delivery.tasks import dispatch


def backend_pid():
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        return cursor.fetchone()[0]


# Outside a test transaction: the fixup and our handlers close connections, as in a worker.
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_prefork_worker_keeps_its_database_connection_across_tasks(settings):
    assert settings.DATABASES["default"]["OPTIONS"].get("pool"), "the worker's pool is what is kept"
    fixup = DjangoWorkerFixup(app)
    fixup.worker = SimpleNamespace(pool_cls="celery.concurrency.prefork:TaskPool")  # what the worker sets
    task = dispatch  # a real task; its request, outside a call, is not eager
    pids = []
    for task_id in "abcdef":
        fixup.on_task_prerun(sender=task)
        signals.task_prerun.send(sender=task, task=task, task_id=task_id, args=(), kwargs={})
        pids.append(backend_pid())
        fixup.on_task_postrun(sender=task)
        signals.task_postrun.send(sender=task, task=task, task_id=task_id, args=(), kwargs={}, retval=None)
    # The pool may hand out either of its connections, but never a new one per task.
    assert len(set(pids)) <= 2, f"a new PostgreSQL backend per task: {pids}"
