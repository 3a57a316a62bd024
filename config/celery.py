import os

from celery import Celery, signals

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("config")
app.config_from_object("django.conf:settings", namespace="CELERY")
# Celery's Django fixup closes the whole database pool before and after every task in a
# prefork worker (not only after the fork), so each batch would open a new PostgreSQL
# connection and backend. Reuse them across tasks (the fixup still renews them every 2,000
# task boundaries, and after each fork); the handlers below return the connection to the pool
# after each task and drop a broken one, as Django does after each request.
app.conf.update({"CELERY_DB_REUSE_MAX": 1000})
app.autodiscover_tasks()


@signals.task_prerun.connect
@signals.task_postrun.connect
def _return_database_connections(task=None, **kwargs):
    if task is not None and getattr(task.request, "is_eager", False):
        return  # run inline by its caller, inside the caller's transaction
    from django.db import close_old_connections

    close_old_connections()
