"""Celery tasks: thin wrappers that take ids and call the delivery module."""

import logging
import uuid

from celery import shared_task
from django.conf import settings
from django.db import transaction

from delivery import dispatcher, link_check, previews, sender

log = logging.getLogger(__name__)


def enqueue_batch(batch_id: uuid.UUID) -> None:
    # After the claim commits. If the broker is down the rows stay queued until their lease ends,
    # then return to pending.
    transaction.on_commit(lambda: send_batch.delay(str(batch_id)))


def enqueue_continuation(batch_id: uuid.UUID, delay: float) -> None:
    # A countdown of one pacing interval, far under the broker's visibility timeout; if the task
    # is lost, the rows' lease brings them back to pending.
    transaction.on_commit(lambda: send_batch.apply_async((str(batch_id),), countdown=delay))


def dispatch_now() -> None:
    """A tick as soon as the caller's transaction commits (send now, resume): a small campaign's first
    batch need not wait for beat's next tick, up to a whole interval. The tick's lock makes an extra
    tick harmless; a broker that cannot be reached leaves it to beat's."""

    def publish() -> None:
        try:
            dispatch.delay()
        except Exception:  # the campaign is started; a tick within the interval claims its rows
            log.warning("could not enqueue a tick now; the next scheduled tick claims the rows", exc_info=True)

    transaction.on_commit(publish)


# Celery has no type hints.
@shared_task(name="campaigns.dispatch", ignore_result=True)  # type: ignore[untyped-decorator]
def dispatch() -> None:
    report = dispatcher.tick(enqueue=enqueue_batch)
    if report.ran and (report.started or report.returned or report.batches or report.completed):
        log.info(
            "tick: started %s campaign(s), returned %s row(s), claimed %s in %s batch(es), completed %s",
            len(report.started),
            report.returned,
            report.claimed,
            len(report.batches),
            report.completed,
        )


# A batch renews its lease while it sends, so the lease does not bound how long it runs; these limits
# do: a batch still running after a lease's length stops at its soft limit and hands its unsent rows
# back, and one that ignores it is killed a little later, its rows coming back after their lease.
# They bound no duplicate: a worker whose main process is blocked (a cut network) may not enforce
# them. The lease fence does (campaigns/lease.py).
@shared_task(
    name="campaigns.send_batch",
    ignore_result=True,
    soft_time_limit=settings.EMAIL_LEASE_SECONDS,
    time_limit=settings.EMAIL_LEASE_SECONDS + 30,
)  # type: ignore[untyped-decorator]
def send_batch(batch_id: str) -> None:
    report = sender.send_batch(batch_id, continue_later=enqueue_continuation)
    if report.account_id is not None and dispatcher.queue_running_dry(account_id=report.account_id):
        dispatch.delay()  # the lock keeps a tick from running twice at once
    log.info(
        "batch %s: sent %s, deferred %s, failed %s, released %s %s",
        batch_id,
        report.sent,
        report.deferred,
        report.failed,
        report.released,
        "; ".join(report.notes),
    )


def enqueue_test_send(test_send_id: int) -> None:
    """Queue a requested test send once the caller's transaction commits."""

    def publish() -> None:
        try:
            send_test.delay(test_send_id)
        except Exception as exc:  # noqa: BLE001 - the broker cannot be reached: the page says so
            log.warning("could not queue test send %s", test_send_id, exc_info=True)
            previews.record_test_send_not_queued(test_send_id=test_send_id, error=exc)

    transaction.on_commit(publish)


@shared_task(name="campaigns.send_test", ignore_result=True)  # type: ignore[untyped-decorator]
def send_test(test_send_id: int) -> None:
    test_send = previews.run_test_send(test_send_id=test_send_id)
    if test_send is not None:
        log.info(
            "test send %s: sent to %s, refused %s %s",
            test_send_id,
            len(test_send.sent),
            len(test_send.refused),
            test_send.error,
        )


def enqueue_link_check(run_id: int) -> None:
    """Queue a requested link check once the caller's transaction commits."""

    def publish() -> None:
        try:
            check_links.delay(run_id)
        except Exception as exc:  # noqa: BLE001 - the broker cannot be reached: the page says so
            log.warning("could not queue link check %s", run_id, exc_info=True)
            link_check.record_not_queued(run_id=run_id, error=exc)

    transaction.on_commit(publish)


# On the `checks` queue (config.settings): its requests wait on other people's web servers, never in
# front of a batch. A run ends when its links are asked; the limit only stops a worker stuck past any
# sensible bound (LINK_CHECK_MAX_URLS links, each up to its redirects, HEAD and GET, connect and read).
@shared_task(
    name="campaigns.check_links",
    ignore_result=True,
    soft_time_limit=30 * 60,
    time_limit=30 * 60 + 30,
)  # type: ignore[untyped-decorator]
def check_links(run_id: int) -> None:
    run = link_check.run_link_check(run_id=run_id)
    if run is not None:
        log.info("link check %s: %s link(s) %s", run_id, run.urls_found, run.error)
