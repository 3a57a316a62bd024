"""Celery tasks of sending: thin wrappers that take ids and call services."""

import logging
from collections.abc import Callable
from typing import Any

from celery import shared_task
from django.db import transaction

from sending import services

log = logging.getLogger(__name__)


def enqueue_connection_test(account_id: int) -> None:
    """Queue the account's connection test once the caller's transaction commits."""
    _queue_on_commit(
        connection_test,
        account_id,
        what=f"the connection test of SMTP account {account_id}",
        not_queued=lambda exc: services.connection_test_not_queued(account_id=account_id, error=exc),
    )


# Not named test_*: pytest would collect it wherever a test module imports it. Celery has no type hints.
@shared_task(name="accounts.test_connection", ignore_result=True)  # type: ignore[untyped-decorator]
def connection_test(account_id: int) -> None:
    result = services.run_connection_test(account_id=account_id)
    if result is not None:
        log.info("SMTP account %s connection test: %s %s", account_id, "ok" if result.ok else "failed", result.message)


def enqueue_mailbox_test(mailbox_id: int) -> None:
    """Queue the bounce mailbox's test once the caller's transaction commits."""
    _queue_on_commit(
        bounce_mailbox_test,
        mailbox_id,
        what=f"the test of bounce mailbox {mailbox_id}",
        not_queued=lambda exc: services.mailbox_test_not_queued(mailbox_id=mailbox_id, error=exc),
    )


def _queue_on_commit(task: Any, object_id: int, *, what: str, not_queued: Callable[[Exception], None]) -> None:
    """Publish the task once the caller's transaction commits; a broker that cannot be reached is
    recorded (not_queued) rather than left as a test that says "Testing…" forever."""

    def publish() -> None:
        try:
            task.delay(object_id)
        except Exception as exc:  # noqa: BLE001 - the broker cannot be reached
            log.warning("could not queue %s", what, exc_info=True)
            not_queued(exc)

    transaction.on_commit(publish)


@shared_task(name="sending.test_bounce_mailbox", ignore_result=True)  # type: ignore[untyped-decorator]
def bounce_mailbox_test(mailbox_id: int) -> None:
    result = services.run_mailbox_test(mailbox_id=mailbox_id)
    if result is not None:
        log.info("bounce mailbox %s test: %s %s", mailbox_id, "ok" if result.ok else "failed", result.message)
