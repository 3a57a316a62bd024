from django.core.management.base import BaseCommand, CommandError

from accounts.models import User
from api import services


class Command(BaseCommand):
    help = "Make an API token for a marketer and print it (once: only its digest is kept)."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--name", default="Made on the command line", help="What uses the token.")

    def handle(self, *args, username, name, **options):
        user = User.objects.filter(username=username).first()
        if user is None:
            raise CommandError(f"No user named {username!r}.")
        if not user.has_access:
            raise CommandError(f"{username} may not use the API: {user.access_denied_reason()}")
        token, raw = services.create_token(owner=user, name=name)
        self.stderr.write(f"Token {token.prefix}… ({token.name}) for {username}; it is not shown again:")
        self.stdout.write(raw)
