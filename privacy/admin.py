"""A contact's privacy requests in its admin: export everything held about it, or erase it."""

from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path

from contacts.admin import ContactAdmin
from contacts.models import Contact
from privacy import selectors as privacy_selectors
from privacy import services as privacy


@admin.register(Contact)
class ContactWithPrivacyRequestsAdmin(ContactAdmin):
    # Adds the privacy request buttons (export, erase) to the object tools.
    change_form_template = "admin/privacy/contact_change_form.html"

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path(
                "<path:object_id>/privacy/export.<str:file_format>",
                view(self.privacy_export_view),
                name="contacts_contact_privacy_export",
            ),
            path(
                "<path:object_id>/privacy/erase/", view(self.privacy_erase_view), name="contacts_contact_privacy_erase"
            ),
        ] + super().get_urls()

    def _own_contact(self, request, object_id):
        contact = self.get_object(request, unquote(object_id))
        if contact is None:
            raise Http404("No such contact.")
        return contact

    def privacy_export_view(self, request, object_id, file_format):
        contact = self._own_contact(request, object_id)
        if not self.has_view_permission(request, contact):
            raise PermissionDenied
        exporters = {"json": (privacy.export_json, "application/json"), "csv": (privacy.export_csv, "text/csv")}
        if file_format not in exporters:
            raise Http404("Export as json or csv.")
        export, content_type = exporters[file_format]
        response = HttpResponse(export(contact=contact), content_type=f"{content_type}; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="contact-{contact.pk}-personal-data.{file_format}"'
        return response

    def privacy_erase_view(self, request, object_id):
        contact = self._own_contact(request, object_id)
        if not self.has_delete_permission(request, contact):
            raise PermissionDenied
        if request.method == "POST":
            erasure = privacy.erase_contact(contact=contact)
            self.message_user(request, privacy.describe_erasure(erasure), messages.SUCCESS)
            return redirect("admin:contacts_contact_changelist")
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "original": contact,
            "title": "Erase this contact?",
            "email_count": privacy_selectors.emails_of(contact=contact).count(),
        }
        return TemplateResponse(request, "admin/privacy/contact_erase.html", context)
