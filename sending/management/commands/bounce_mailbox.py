import sys
from argparse import ArgumentParser
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from sending import services
from sending.models import BounceMailbox, SmtpAccount


class Command(BaseCommand):
    help = (
        "Set up (or replace) the bounce mailbox of an SMTP account, read over IMAP or POP3 with TLS. "
        "The password is read from standard input only (its first line), never from the command line."
    )
    # call_command(..., stdin=...) passes the stream as an option; without this it is refused.
    stealth_options = ("stdin",)

    def create_parser(self, prog_name: str, subcommand: str, **kwargs: Any) -> CommandParser:
        # No abbreviations: "--password SECRET" must be refused as unknown, not read as --password-stdin.
        return super().create_parser(prog_name, subcommand, allow_abbrev=False, **kwargs)

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("account_id", type=int, help="The SMTP account's id.")
        parser.add_argument("--protocol", required=True, choices=BounceMailbox.Protocol.values)
        parser.add_argument("--host", required=True)
        parser.add_argument("--port", required=True, type=int)
        parser.add_argument("--security", required=True, choices=BounceMailbox.Security.values)
        parser.add_argument("--username", required=True)
        parser.add_argument(
            "--password-stdin", action="store_true", help="Read the password from standard input (required)."
        )
        parser.add_argument("--folder", default="INBOX", help="IMAP only: the folder bounces arrive in (INBOX).")
        parser.add_argument("--disabled", action="store_true", help="Save it without reading it yet.")
        parser.add_argument(
            "--test", action="store_true", help="Then log in and say how many messages wait (changes nothing)."
        )

    def handle(self, *args: Any, account_id: int, password_stdin: bool, **options: Any) -> None:
        account = SmtpAccount.objects.filter(pk=account_id).first()
        if account is None:
            raise CommandError(f"There is no SMTP account with id {account_id}.")
        if not password_stdin:
            raise CommandError("The password is read from standard input only: pass --password-stdin and pipe it in.")
        password = (options.get("stdin") or sys.stdin).readline().rstrip("\r\n")
        if not password:
            raise CommandError("No password on standard input.")
        try:
            mailbox = services.configure_bounce_mailbox(
                account=account,
                protocol=options["protocol"],
                host=options["host"],
                port=options["port"],
                security=options["security"],
                username=options["username"],
                password=password,
                folder=options["folder"],
                enabled=not options["disabled"],
            )
        except ValidationError as exc:
            raise CommandError(
                "Nothing was saved:\n"
                + "\n".join(
                    f"  {field}: {message}" for field, messages in exc.message_dict.items() for message in messages
                )
            ) from exc
        state = "disabled" if not mailbox.enabled else "read every minute"
        self.stdout.write(
            self.style.SUCCESS(f"SMTP account {account.pk} ({account.name}): bounce mailbox {mailbox}, {state}.")
        )
        if options["test"]:
            result = services.run_mailbox_test(mailbox_id=mailbox.pk)
            if result is None or not result.ok:
                raise CommandError(f"The mailbox test failed: {result.message if result else 'the mailbox is gone'}")
            self.stdout.write(f"Test: {result.message}")
