from django.contrib import admin

from accounts.owned_admin import scope_to_user
from contacts import exports
from contacts.models import Contact, ContactList
from contacts.resources import ContactExportResource


def _contacts_download(request, contacts, file_format, name):
    if not contacts.exists():
        return None
    own_lists = scope_to_user(ContactList.objects.all(), request.user)
    headers, rows = ContactExportResource(visible_lists=own_lists).export_contacts(contacts)
    return exports.download(headers=headers, rows=rows, file_format=file_format, name=name)


@admin.action(description="Export selected contacts as CSV", permissions=["view"])
def export_contacts_csv(modeladmin, request, queryset):
    return _contacts_download(request, queryset, "csv", "contacts")


@admin.action(description="Export selected contacts as Excel (XLSX)", permissions=["view"])
def export_contacts_xlsx(modeladmin, request, queryset):
    return _contacts_download(request, queryset, "xlsx", "contacts")


def _list_contacts(request, lists):
    contacts = scope_to_user(Contact.objects.all(), request.user).filter(lists__in=lists).distinct()
    return contacts.order_by("email")


@admin.action(description="Export the contacts of selected lists as CSV", permissions=["view"])
def export_list_contacts_csv(modeladmin, request, queryset):
    return _contacts_download(request, _list_contacts(request, queryset), "csv", "contacts")


@admin.action(description="Export the contacts of selected lists as Excel (XLSX)", permissions=["view"])
def export_list_contacts_xlsx(modeladmin, request, queryset):
    return _contacts_download(request, _list_contacts(request, queryset), "xlsx", "contacts")


CONTACT_EXPORT_ACTIONS = [export_contacts_csv, export_contacts_xlsx]


LIST_EXPORT_ACTIONS = [export_list_contacts_csv, export_list_contacts_xlsx]
