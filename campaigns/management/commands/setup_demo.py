import secrets

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from accounts import services
from accounts.models import User
from contacts.models import Contact, ContactList
from sending.models import SmtpAccount

DEMO_USERNAME = "demo"


class Command(BaseCommand):
    help = "Development only: a demo marketer with an SMTP account pointing at the local SMTP sink."

    def add_arguments(self, parser):
        parser.add_argument("--sink-port", type=int, default=1025)

    @transaction.atomic
    def handle(self, *args, sink_port, **options):
        if settings.PRODUCTION:
            raise CommandError("setup_demo is for development only (DJANGO_ENV=production is set).")
        password = secrets.token_urlsafe(9)
        user = User.objects.filter(username=DEMO_USERNAME).first()
        if user is None:
            user = services.create_marketer(
                username=DEMO_USERNAME, email="demo@example.com", password=password, organization="Demo Traders"
            )
            user.postal_address = "1 MG Road, Bengaluru 560001, India"
            user.save(update_fields=["postal_address"])
        else:
            user.set_password(password)
            user.save(update_fields=["password"])
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
        self.stdout.write(self.style.SUCCESS("Demo marketer ready at http://127.0.0.1:8000/admin/"))
        self.stdout.write(f"  username: {DEMO_USERNAME}")
        self.stdout.write(f"  password: {password}")
        self.stdout.write(f"  messages sent by the demo account land in {settings.SMTP_SINK_DIR}")
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
