from django.db.models import Prefetch
from django.utils import timezone
from import_export import fields, resources


def iso(value):
    if not value:
        return ""
    return timezone.localtime(value).isoformat(timespec="seconds")


class ContactExportResource(resources.Resource):
    """Contacts with their lists (only the exporting user's) and one column per attribute."""

    email = fields.Field(column_name="Email", attribute="email")
    name = fields.Field(column_name="Name", attribute="name")
    status = fields.Field(column_name="Status", attribute="status")
    lists = fields.Field(column_name="Lists")
    created_at = fields.Field(column_name="Created")

    def __init__(self, *, visible_lists, **kwargs):
        super().__init__(**kwargs)
        self.visible_lists = visible_lists
        self.attribute_keys = []

    def dehydrate_lists(self, contact):
        return ", ".join(sorted(cl.name for cl in contact.lists.all()))

    def dehydrate_created_at(self, contact):
        return iso(contact.created_at)

    def export_contacts(self, queryset):
        # The admin queryset may prefetch lists already: replace that with the user-visible ones.
        queryset = queryset.prefetch_related(None).prefetch_related(Prefetch("lists", queryset=self.visible_lists))
        contacts = list(queryset)
        keys = []
        for contact in contacts:
            for key in contact.attributes or {}:
                if key not in keys:
                    keys.append(key)
        dataset = self.export(queryset=contacts)
        headers = list(dataset.headers) + keys
        rows = [list(row) + [str((c.attributes or {}).get(k, "")) for k in keys] for row, c in zip(dataset, contacts)]
        return headers, rows


def contact_rows(*, contacts, user_lists):
    return ContactExportResource(visible_lists=user_lists).export_contacts(contacts)
