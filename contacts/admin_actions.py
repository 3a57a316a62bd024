from django.contrib import admin, messages
from django.utils import timezone

from contacts.models import Contact
from contacts.services import contacts


@admin.action(description="Unsubscribe selected contacts (their unsent emails are cancelled)")
def unsubscribe_contacts(modeladmin, request, queryset):
    changed = contacts.suppress(
        contact_ids=queryset.values_list("pk", flat=True), status=Contact.Status.UNSUBSCRIBED, now=timezone.now()
    )
    modeladmin.message_user(request, f"{changed} contact(s) unsubscribed.", messages.SUCCESS)


CONTACT_ACTIONS = [unsubscribe_contacts]
