"""Run only by tests/test_isolation.py, as two pytest runs started at once (its name keeps the suite from
collecting it): each run meets the other inside its test, then publishes to its broker, caches a value and
writes rows, and finds exactly its own. Runs that shared a test database or a Redis would fail here (or
already when the second one created the database)."""

import os
import time
from pathlib import Path

import pytest
import redis
from django.core.cache import cache

from config.celery import app
from contacts.models import Contact
from tests.factories import ContactFactory, MarketerFactory

MEETING_SECONDS = 120
BACKLOG = 20


def wait_for_both(folder, step):
    """Marks this run at `step` and waits until the other run is there too."""
    (folder / f"{step}-{os.getpid()}").touch()
    deadline = time.monotonic() + MEETING_SECONDS
    while len(list(folder.glob(f"{step}-*"))) < 2:
        if time.monotonic() > deadline:
            pytest.fail(f"the other run did not reach {step!r} within {MEETING_SECONDS}s")
        time.sleep(0.1)


@pytest.mark.django_db(transaction=True)
def test_a_run_sees_only_its_own_queue_keys_and_rows(redis_url):
    folder = Path(os.environ["ISOLATION_PROBE_DIR"])
    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    wait_for_both(folder, "started")

    owner = MarketerFactory(username=f"probe-{os.getpid()}")
    ContactFactory.create_batch(3, owner=owner)
    cache.set("probe", os.getpid())
    with app.connection_for_write() as conn:
        producer = app.amqp.Producer(conn)
        for i in range(BACKLOG):
            app.send_task("campaigns.send_batch", (f"probe-{i}",), connection=conn, producer=producer)
    wait_for_both(folder, "published")

    assert client.llen("celery") == BACKLOG
    assert cache.get("probe") == os.getpid()
    assert set(Contact.objects.values_list("owner__username", flat=True)) == {owner.username}
    wait_for_both(folder, "checked")
    client.flushdb()
    client.close()
