"""Celery tasks of sending: thin wrappers that take ids and call services."""

import logging

from celery import shared_task
from django.db import transaction

from sending import services

log = logging.getLogger(__name__)


def enqueue_connection_test(account_id: int) -> None:
    """Queue the account's connection test once the caller's transaction commits."""

    def publish() -> None:
        try:
            connection_test.delay(account_id)
        except Exception as exc:  # noqa: BLE001 - the broker cannot be reached
            log.warning("could not queue the connection test of SMTP account %s", account_id, exc_info=True)
            services.connection_test_not_queued(account_id=account_id, error=exc)

    transaction.on_commit(publish)


# Not named test_*: pytest would collect it wherever a test module imports it. Celery has no type hints.
@shared_task(name="accounts.test_connection", ignore_result=True)  # type: ignore[untyped-decorator]
def connection_test(account_id: int) -> None:
    result = services.run_connection_test(account_id=account_id)
    if result is not None:
        log.info("SMTP account %s connection test: %s %s", account_id, "ok" if result.ok else "failed", result.message)


def enqueue_mailbox_test(mailbox_id: int) -> None:
    """Queue the bounce mailbox's test once the caller's transaction commits."""

    def publish() -> None:
        try:
            bounce_mailbox_test.delay(mailbox_id)
        except Exception as exc:  # noqa: BLE001 - the broker cannot be reached
            log.warning("could not queue the test of bounce mailbox %s", mailbox_id, exc_info=True)
            services.mailbox_test_not_queued(mailbox_id=mailbox_id, error=exc)

    transaction.on_commit(publish)


@shared_task(name="sending.test_bounce_mailbox", ignore_result=True)  # type: ignore[untyped-decorator]
def bounce_mailbox_test(mailbox_id: int) -> None:
    result = services.run_mailbox_test(mailbox_id=mailbox_id)
    if result is not None:
        log.info("bounce mailbox %s test: %s %s", mailbox_id, "ok" if result.ok else "failed", result.message)
