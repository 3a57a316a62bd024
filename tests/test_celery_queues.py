"""The dispatcher's tick has a queue of its own that every worker consumes, so it never waits behind
the batches a large campaign queued (a real worker takes it while a backlog of batches waits); so have
the subscription forms' confirmation emails, and the link checks (their requests wait on other people's
web servers, never in front of a batch). The bounce mailboxes' reads have one too, which the Procfile's
sending worker does not consume: a slow mailbox never takes a batch's slot."""

import time
from pathlib import Path

import pytest
import redis

from config.celery import app
from tests.e2e.test_worker_sends_campaign import e2e_broker_url  # noqa: F401  (fixture)

pytestmark = [pytest.mark.redis]


def test_the_tick_goes_to_its_own_queue_and_batches_to_the_default_one():
    assert app.amqp.router.route({}, "campaigns.dispatch")["queue"].name == "dispatch"
    assert app.amqp.router.route({}, "campaigns.send_batch")["queue"].name == "celery"


def test_a_subscription_forms_confirmation_email_does_not_wait_behind_the_batches():
    assert app.amqp.router.route({}, "campaigns.send_subscription_confirmation")["queue"].name == "confirmations"


def test_a_link_check_neither_waits_behind_the_batches_nor_holds_them_up():
    assert app.amqp.router.route({}, "campaigns.check_links")["queue"].name == "checks"


def test_the_bounce_mailboxes_are_read_on_their_own_queue():
    assert app.amqp.router.route({}, "bounces.read_mailboxes")["queue"].name == "bounces"
    assert app.amqp.router.route({}, "bounces.read_mailbox")["queue"].name == "bounces"


def test_a_worker_started_without_options_consumes_every_queue():
    assert {queue.name for queue in app.amqp.queues.consume_from.values()} == {
        "celery",
        "dispatch",
        "confirmations",
        "checks",
        "bounces",
    }


def procfile_queues():
    """The queues each Celery worker of the Procfile consumes (-Q), by process name."""
    queues = {}
    for line in (Path(__file__).resolve().parents[1] / "Procfile").read_text().splitlines():
        name, _, command = line.partition(":")
        words = command.split()
        if "worker" in words:
            queues[name] = set(words[words.index("-Q") + 1].split(","))
    return queues


def test_the_procfiles_workers_consume_every_queue_and_bounces_apart_from_the_batches():
    queues = procfile_queues()
    assert set().union(*queues.values()) == {queue.name for queue in app.amqp.queues.consume_from.values()}
    assert queues["bounces"] == {"bounces"} and "bounces" not in queues["worker"]


def test_a_tick_published_behind_a_backlog_of_batches_waits_in_its_own_queue(e2e_broker_url):
    """Published through the broker as beat publishes it: the tick is the first message of its queue,
    not the last of the batches' queue."""
    from delivery import tasks

    client = redis.Redis.from_url(e2e_broker_url)  # the run's own, flushed before and after
    with app.connection_for_write(e2e_broker_url) as conn:
        producer = app.amqp.Producer(conn)
        for i in range(20):
            tasks.send_batch.apply_async((f"backlog-{i}",), connection=conn, producer=producer)
        tasks.dispatch.apply_async(connection=conn, producer=producer)
    deadline = time.monotonic() + 5
    while client.llen("dispatch") < 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert (client.llen("celery"), client.llen("dispatch")) == (20, 1)
    client.close()


def test_a_mailbox_read_published_behind_a_backlog_of_batches_waits_in_its_own_queue(e2e_broker_url):
    from bounces import tasks as bounce_tasks
    from delivery import tasks

    client = redis.Redis.from_url(e2e_broker_url)
    with app.connection_for_write(e2e_broker_url) as conn:
        producer = app.amqp.Producer(conn)
        for i in range(20):
            tasks.send_batch.apply_async((f"backlog-{i}",), connection=conn, producer=producer)
        bounce_tasks.read_mailbox.apply_async((1,), connection=conn, producer=producer)
        bounce_tasks.read_mailboxes.apply_async(connection=conn, producer=producer)
    deadline = time.monotonic() + 5
    while client.llen("bounces") < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert (client.llen("celery"), client.llen("bounces")) == (20, 2)
    client.close()
