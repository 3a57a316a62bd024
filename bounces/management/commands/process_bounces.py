from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from bounces import selectors, services
from bounces.services import Figures
from sending.mailbox import MailboxError
from sending.models import BounceMailbox, SmtpAccount


class Command(BaseCommand):
    help = (
        "Read the enabled bounce mailboxes now (the periodic task does it every minute): each DSN, complaint "
        "and unsubscribe mail is acted on, then removed from the mailbox. --account reads one account's."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--account", type=int, metavar="ID", help="Only this SMTP account's mailbox.")

    def handle(self, *args: Any, account: int | None, **options: Any) -> None:
        mailboxes = list(selectors.mailboxes_to_read(account_id=account))
        if account is not None and not mailboxes:
            raise CommandError(_why_not_read(account))
        failed = 0
        for mailbox in mailboxes:
            label = f"SMTP account {mailbox.account_id} ({mailbox.account.name}), {mailbox}"
            try:
                figures = services.read_mailbox(mailbox=mailbox)
            except MailboxError as exc:
                failed += 1
                self.stderr.write(f"{label}: not read: {exc}")
                continue
            if figures is None:
                self.stdout.write(f"{label}: skipped, another read of it is running.")
            else:
                self.stdout.write(f"{label}: {_summary(figures)}")
        if not mailboxes:
            self.stdout.write("No bounce mailbox is enabled.")
        if failed:
            raise CommandError(f"{failed} of {len(mailboxes)} bounce mailbox(es) could not be read.")


def _why_not_read(account_id: int) -> str:
    if not SmtpAccount.objects.filter(pk=account_id).exists():
        return f"There is no SMTP account with id {account_id}."
    if not BounceMailbox.objects.filter(account_id=account_id).exists():
        return f"SMTP account {account_id} has no bounce mailbox: set it up on its page or with bounce_mailbox."
    return f"SMTP account {account_id}'s bounce mailbox is disabled: enable it on its page first."


def _summary(figures: Figures) -> str:
    recorded = ", ".join(f"{count} {kind}" for kind, count in sorted(figures.recorded.items())) or "none"
    return (
        f"{figures.read} read; recorded: {recorded}; already recorded {figures.already_recorded}, "
        f"unmatched {figures.unmatched}, not reports {figures.ignored}; {figures.suppressed} contact(s) "
        f"suppressed; {figures.errors} left for the next read after an error."
    )
