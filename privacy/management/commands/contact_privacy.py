"""manage.py contact_privacy export|erase --owner USERNAME EMAIL: a privacy request for one contact.

export writes everything held about the contact to stdout (--format json, the default, or csv);
erase deletes it as privacy.services.erase_contact does, campaign figures unchanged.
"""

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from contacts.addresses import normalize_address
from contacts.models import Contact
from privacy import services as privacy


class Command(BaseCommand):
    help = "Export (JSON or CSV) or erase everything held about one contact of an owner."

    def add_arguments(self, parser):
        parser.add_argument("request", choices=["export", "erase"])
        parser.add_argument("email", help="the contact's address (any case)")
        parser.add_argument("--owner", required=True, help="the username of the contact's owner")
        parser.add_argument("--format", choices=["json", "csv"], default="json", help="export only")

    def handle(self, *args, request, email, owner, format, **options):
        contact = self._contact(owner=owner, email=email)
        if request == "export":
            data = privacy.export_json(contact=contact) if format == "json" else privacy.export_csv(contact=contact)
            self.stdout.write(data.decode("utf-8").lstrip("\ufeff"))
            return
        self.stdout.write(privacy.describe_erasure(privacy.erase_contact(contact=contact)))

    def _contact(self, *, owner, email):
        user = get_user_model().objects.filter(username=owner).first()
        if user is None:
            raise CommandError(f"No user named {owner!r}.")
        contact = Contact.objects.filter(owner=user, email=normalize_address(email)).first()
        if contact is None:
            raise CommandError(f"{owner} has no contact {email!r}.")
        return contact
