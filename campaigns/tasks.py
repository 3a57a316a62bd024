"""Celery tasks: thin wrappers that take ids and call the delivery module."""

import logging

from celery import shared_task

from campaigns.delivery import dispatcher, sender

log = logging.getLogger(__name__)


@shared_task(name="campaigns.dispatch", ignore_result=True)
def dispatch():
    report = dispatcher.tick()
    if report.ran and (report.started or report.returned or report.batches or report.completed):
        log.info(
            "tick: started %s campaign(s), returned %s row(s), claimed %s in %s batch(es), completed %s",
            len(report.started), report.returned, report.claimed, len(report.batches), report.completed,
        )


@shared_task(name="campaigns.send_batch", ignore_result=True)
def send_batch(batch_id):
    report = sender.send_batch(batch_id)
    log.info(
        "batch %s: sent %s, deferred %s, failed %s, released %s %s",
        batch_id, report.sent, report.deferred, report.failed, report.released, "; ".join(report.notes),
    )


@shared_task(name="campaigns.import_contacts", ignore_result=True)
def import_contacts(job_id):
    from campaigns.imports import jobs

    result = jobs.run(job_id=job_id)
    if result is not None:
        log.info("import job %s: %s in %s row(s)", job_id, result.counts, result.processed_rows)
