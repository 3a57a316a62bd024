import secrets

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from accounts import services
from accounts.models import User


class Command(BaseCommand):
    help = (
        "Create a superuser (approves sign-ups, sees everything) with a generated password, printed once. "
        "`make superuser ADMIN_EMAIL=E` runs it."
    )

    def add_arguments(self, parser):
        parser.add_argument("--email", required=True, help="Where the sign-ups' approval requests go.")
        parser.add_argument("--username", default="admin")
        parser.add_argument(
            "--if-missing", action="store_true", help="A user of this name exists already: say so and change nothing."
        )

    def handle(self, *args, email, username, if_missing, **options):
        existing = User.objects.filter(username__iexact=username).first()
        if existing is not None and if_missing:
            self.stdout.write(f"Superuser {existing.username} exists already: unchanged.")
            return
        if existing is not None:
            raise CommandError(
                f"A user named {existing.username!r} exists already: choose another with --username "
                f"(ADMIN_USERNAME=), or give it a new password with manage.py changepassword {existing.username}."
            )
        password = secrets.token_urlsafe(12)
        try:
            user = services.create_superuser(username=username, email=email, password=password)
        except ValidationError as exc:
            raise CommandError(
                "Nothing was created: "
                + "; ".join(
                    f"{field}: {message}" for field, messages in exc.message_dict.items() for message in messages
                )
            ) from exc
        self.stdout.write(self.style.SUCCESS(f"Created superuser {user.username} <{user.email}>."))
        self.stdout.write(f"  username: {user.username}")
        self.stdout.write(f"  password: {password}")
        self.stdout.write("  (shown this once: keep it, or change it with the admin's Change password link)")
        self.stdout.write(
            "  approve sign-ups: Users, filter Waiting for approval, action Approve selected accounts. "
            f"Approval requests are mailed to {user.email}."
        )
