import secrets
import sys

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from accounts import services
from accounts.models import User


class Command(BaseCommand):
    help = "Create an approved marketer (staff, in the Marketers group) who can log in at once."
    # call_command(..., stdin=...) passes the stream as an option; without this it is refused.
    stealth_options = ("stdin",)

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--email", required=True)
        parser.add_argument("--organization", default="")
        parser.add_argument("--timezone", default=None, help="An IANA zone such as Asia/Kolkata (the default).")
        parser.add_argument(
            "--password-stdin", action="store_true", help="Read the password from standard input (first line)."
        )

    def handle(self, *args, username, email, organization, timezone, password_stdin, **options):
        # Case-insensitive, as sign-up checks it: "Alice" next to "alice" is one person twice.
        if User.objects.filter(username__iexact=username).exists():
            raise CommandError(f"A user named {username!r} exists already.")
        if password_stdin:
            stdin = options.get("stdin") or sys.stdin
            password = stdin.readline().rstrip("\r\n")
            if not password:
                raise CommandError("No password on standard input.")
            generated = False
        else:
            password = secrets.token_urlsafe(12)
            generated = True
        try:
            user = services.create_marketer(
                username=username, email=email, password=password, organization=organization, timezone_name=timezone
            )
        except ValidationError as exc:
            raise CommandError(
                "Nothing was created:\n"
                + "\n".join(
                    f"  {field}: {message}" for field, messages in exc.message_dict.items() for message in messages
                )
            ) from exc
        self.stdout.write(self.style.SUCCESS(f"Created marketer {user.username} <{user.email}>."))
        if generated:
            self.stdout.write(f"Password: {password}")
