import os
import secrets

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from accounts import services
from accounts.models import User
from contacts.models import Contact, ContactList
from sending.models import SmtpAccount

DEMO_USERNAME = "demo"
RESET_HINT = "make demo-password (or manage.py setup_demo --reset-password)"


def password_file():
    """The demo marketer's generated password, readable by its owner only, so that every `make run`
    can print it again without resetting it. Only the demo account has one: it sends nowhere but to
    the local SMTP sink, and setup_demo refuses to run in production."""
    return settings.VAR_DIR / "demo-password"


def remembered_password(user):
    """The password setup_demo generated for the demo marketer, or None if it is gone or changed since."""
    try:
        password = password_file().read_text().strip()
    except FileNotFoundError:
        return None
    return password if password and user.check_password(password) else None


def _remember(password):
    path = password_file()
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(descriptor, 0o600)  # a file left by hand with a wider mode is narrowed too
    with os.fdopen(descriptor, "w") as file:
        file.write(password + "\n")


class Command(BaseCommand):
    help = (
        "Development only: a demo marketer with an SMTP account pointing at the local SMTP sink. Its password "
        "is generated once and kept in VAR_DIR/demo-password; later runs leave it (and open sessions) alone."
    )

    def add_arguments(self, parser):
        parser.add_argument("--sink-port", type=int, default=None, help="Default: SINK_PORT (1025).")
        parser.add_argument(
            "--reset-password",
            action="store_true",
            help="Give the demo marketer a new password and print it (logs out its open sessions).",
        )

    @transaction.atomic
    def handle(self, *args, sink_port, reset_password, **options):
        if settings.PRODUCTION:
            raise CommandError("setup_demo is for development only (DJANGO_ENV=production is set).")
        user = User.objects.filter(username=DEMO_USERNAME).first()
        if user is not None and reset_password:
            # Only the password: the account's port belongs to the `make run` that set it up.
            self._reset_password(user)
            return
        sink_port = settings.SINK_PORT if sink_port is None else sink_port
        new_password = None
        if user is None:
            new_password = secrets.token_urlsafe(9)
            user = services.create_marketer(
                username=DEMO_USERNAME, email="demo@example.com", password=new_password, organization="Demo Traders"
            )
            user.postal_address = "1 MG Road, Bengaluru 560001, India"
            user.save(update_fields=["postal_address"])
            # Written once the user row is committed: the file never holds a password the database lacks.
            transaction.on_commit(lambda: _remember(new_password))
        SmtpAccount.objects.update_or_create(
            owner=user,
            name="Local SMTP sink",
            defaults={
                "host": "127.0.0.1",
                "port": sink_port,
                "security": SmtpAccount.Security.NONE,
                "from_email": "demo@example.com",
                "from_name": "Demo Traders",
                "max_per_minute": 600,
                "max_per_hour": 20000,
                "max_per_day": 100000,
            },
        )
        self._demo_contacts(user)
        self._report(new_password=new_password, sink_port=sink_port)

    def _reset_password(self, user):
        password = secrets.token_urlsafe(9)
        user.set_password(password)
        user.save(update_fields=["password"])
        transaction.on_commit(lambda: _remember(password))
        self.stdout.write(self.style.SUCCESS("Demo marketer's password reset (its open sessions are logged out)."))
        self.stdout.write(f"  username: {DEMO_USERNAME}")
        self.stdout.write(f"  password: {password}")

    def _report(self, *, new_password, sink_port):
        self.stdout.write(self.style.SUCCESS(f"Demo marketer ready at {settings.SITE_URL}/admin/"))
        self.stdout.write(f"  username: {DEMO_USERNAME}")
        if new_password is not None:
            self.stdout.write(f"  password: {new_password} (kept in {password_file()}; make run prints it again)")
        else:
            self.stdout.write(f"  password: unchanged (make run prints it once started; reset with {RESET_HINT})")
        self.stdout.write(f"  messages sent by the demo account land in {settings.SMTP_SINK_DIR} (port {sink_port})")
        if not settings.SMTP_ALLOW_PRIVATE_HOSTS:
            self.stdout.write(
                self.style.WARNING(
                    "  the demo account's server is on 127.0.0.1: start the processes with SMTP_ALLOW_PRIVATE_HOSTS=1 "
                    "(make run does), or the SMTP destination guard refuses it"
                )
            )

    def _demo_contacts(self, user):
        demo_list, _ = ContactList.objects.get_or_create(owner=user, name="Demo list")
        for email, name, city in [
            ("asha.rao@example.com", "Asha Rao", "Pune"),
            ("vikram.iyer@example.com", "Vikram Iyer", "Chennai"),
            ("priya@example.in", "Priya", "Bengaluru"),
        ]:
            contact, _ = Contact.objects.get_or_create(
                owner=user, email=email, defaults={"name": name, "attributes": {"City": city}}
            )
            demo_list.contacts.add(contact)
