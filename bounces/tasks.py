"""Celery tasks of bounces: thin wrappers that take ids and call services."""

import logging
from dataclasses import asdict

from celery import shared_task

from bounces import selectors, services
from sending.mailbox import MailboxError

log = logging.getLogger(__name__)

READ_MAILBOXES_TASK = "bounces.read_mailboxes"


@shared_task(name=READ_MAILBOXES_TASK, ignore_result=True)  # type: ignore[untyped-decorator]
def read_mailboxes() -> None:
    """The periodic read: one task per enabled mailbox, so a slow server holds back only its own."""
    for mailbox_id in selectors.mailboxes_to_read().values_list("pk", flat=True):
        read_mailbox.delay(mailbox_id)


@shared_task(name="bounces.read_mailbox", ignore_result=True)  # type: ignore[untyped-decorator]
def read_mailbox(mailbox_id: int) -> None:
    mailbox = selectors.mailboxes_to_read().filter(pk=mailbox_id).first()
    if mailbox is None:
        return  # disabled or deleted since it was queued
    try:
        figures = services.read_mailbox(mailbox=mailbox)
    except MailboxError as exc:
        log.warning("bounce mailbox %s of SMTP account %s not read: %s", mailbox.pk, mailbox.account_id, exc)
        return
    if figures is None:
        log.info("bounce mailbox %s is being read by another pass", mailbox.pk)
    elif figures.read:
        log.info("bounce mailbox %s of SMTP account %s: %s", mailbox.pk, mailbox.account_id, asdict(figures))
