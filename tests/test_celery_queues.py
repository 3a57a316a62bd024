"""The dispatcher's tick has a queue of its own that every worker consumes, so it never waits behind
the batches a large campaign queued (a real worker takes it while a backlog of batches waits); so have
the subscription forms' confirmation emails, and the link checks (their requests wait on other people's
web servers, never in front of a batch)."""

import time

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


def test_a_worker_started_without_options_consumes_every_queue():
    assert {queue.name for queue in app.amqp.queues.consume_from.values()} == {
        "celery",
        "dispatch",
        "confirmations",
        "checks",
    }


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
