from django.contrib import admin
from django.db.models import Count, Prefetch, Q
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from accounts.owned_admin import OwnedModelAdmin, scope_to_user
from bounces import selectors as bounce_selectors
from contacts import admin_actions, export_actions, exports
from contacts.forms import ContactAdminForm, SubscriptionFormAdminForm
from contacts.imports import jobs
from contacts.imports.forms import ImportUploadForm
from contacts.models import Contact, ContactList, ImportJob, SubscriptionForm
from contacts.services import contacts
from contacts.subscriptions import embed


# Registered by privacy.admin, which adds a contact's privacy requests (export, erase) to this admin.
class ContactAdmin(OwnedModelAdmin):
    form = ContactAdminForm
    list_display = ("email", "name", "status", "list_names", "created_at")
    # Adds "Import contacts" (the ImportJob admin's upload form) to the object tools.
    change_list_template = "admin/contacts/contact_change_list_import.html"
    actions = admin_actions.CONTACT_ACTIONS + export_actions.CONTACT_EXPORT_ACTIONS
    list_filter = ("status", "lists", "created_at")
    search_fields = ("email", "name")
    # The status is written by contacts.services.contacts only (the action here, bounces, unsubscribes).
    readonly_fields = (
        "status",
        "status_changed_at",
        "consent_at",
        "consent_form",
        "consent_text",
        "consent_ip_hash",
        "created_at",
        "updated_at",
        "delivery_problems",
        "lists_of_contact",
    )

    def get_fields(self, request, obj=None):
        # Its lists right under its name and attributes, not after every read-only date.
        fields = [f for f in super().get_fields(request, obj) if f != "lists_of_contact"]
        at = fields.index("attributes") + 1 if "attributes" in fields else len(fields)
        return [*fields[:at], "lists_of_contact", *fields[at:]]

    def get_queryset(self, request):
        # Only the user's own lists: a contact may sit in another owner's list (put
        # there by a superuser), whose name must not show in the Lists column.
        own_lists = scope_to_user(ContactList.objects.all(), request.user)
        return super().get_queryset(request).prefetch_related(Prefetch("lists", queryset=own_lists))

    @admin.display(description="Lists")
    def list_names(self, obj):
        return ", ".join(contact_list.name for contact_list in obj.lists.all())

    @admin.display(description="Lists")
    def lists_of_contact(self, obj):
        """The contact's lists (the user's own: get_queryset prefetches only those), each a link."""
        lists = list(obj.lists.all()) if obj.pk else []
        if not lists:
            return "In no list."
        return format_html_join(
            ", ",
            '<a href="{}">{}</a>',
            ((reverse("admin:contacts_contactlist_change", args=[each.pk]), each.name) for each in lists),
        )

    @admin.display(description="Bounces and complaints")
    def delivery_problems(self, obj):
        """Its latest bounces, refused by the SMTP server or reported after the 250, and its complaints."""
        problems = bounce_selectors.contact_delivery_problems(contact=obj) if obj.pk else []
        if not problems:
            return "None."
        return format_html(
            '<ul class="delivery-problems">{}</ul>',
            format_html_join(
                "",
                "<li>{} · {} · {}{}</li>",
                (
                    (
                        timezone.localtime(p.at).strftime("%d %b %Y %H:%M"),
                        p.campaign,
                        p.what,
                        f": {p.detail}" if p.detail else "",
                    )
                    for p in problems
                ),
            ),
        )

    def save_model(self, request, obj, form, change):
        if not change:
            contacts.suppress_if_erased(contact=obj, now=timezone.now())
        super().save_model(request, obj, form, change)


@admin.register(ContactList)
class ContactListAdmin(OwnedModelAdmin):
    list_display = ("name", "contact_count", "subscribed_count", "created_at")
    search_fields = ("name", "description")
    autocomplete_fields = ("contacts",)
    actions = export_actions.LIST_EXPORT_ACTIONS

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .annotate(
                contact_count=Count("contacts", distinct=True),
                subscribed_count=Count("contacts", filter=Q(contacts__status=Contact.Status.SUBSCRIBED), distinct=True),
            )
        )

    @admin.display(description="Contacts", ordering="contact_count")
    def contact_count(self, obj):
        return obj.contact_count

    @admin.display(description="Subscribed", ordering="subscribed_count")
    def subscribed_count(self, obj):
        return obj.subscribed_count


@admin.register(ImportJob)
class ImportJobAdmin(OwnedModelAdmin):
    """Contact imports: the upload form (add), the preview and confirm, the progress page (change), the report.

    Every view reaches its job through get_object, which is owner-scoped: another
    owner's job answers 404. The work is done by contacts.imports.jobs.
    """

    list_display = (
        "original_name",
        "list_name",
        "status",
        "progress",
        "created_count",
        "updated_count",
        "merged_count",
        "suppressed_count",
        "rejected_count",
        "created_at",
    )
    list_filter = ("status", "created_at")
    search_fields = ("original_name",)
    list_select_related = ("contact_list",)

    @admin.display(description="List")
    def list_name(self, obj):
        return obj.list_name

    @admin.display(description="Progress")
    def progress(self, obj):
        return f"{obj.processed_rows}/{obj.total_rows} ({obj.percent}%)"

    def get_urls(self):
        from django.urls import path

        wrap = self.admin_site.admin_view
        opts = self.model._meta
        name = f"{opts.app_label}_{opts.model_name}"
        return [
            path("<path:object_id>/preview/", wrap(self.preview_view), name=f"{name}_preview"),
            path("<path:object_id>/status/", wrap(self.status_view), name=f"{name}_status"),
            path("<path:object_id>/report/", wrap(self.report_view), name=f"{name}_report"),
        ] + super().get_urls()

    def _job(self, request, object_id):
        from django.contrib.admin.utils import unquote
        from django.core.exceptions import PermissionDenied

        job = self.get_object(request, unquote(object_id))  # 404 for another owner's job
        if not self.has_view_permission(request, job):
            raise PermissionDenied
        return job

    def _render(self, request, template, job=None, **context):
        from django.template.response import TemplateResponse

        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "job": job,
            "title": context.pop("title", "Import contacts"),
            "has_view_permission": True,
            "original": job,
            **context,
        }
        return TemplateResponse(request, template, context)

    def add_view(self, request, form_url="", extra_context=None):
        from django.core.exceptions import PermissionDenied
        from django.shortcuts import redirect

        if not self.has_add_permission(request):
            raise PermissionDenied
        form = ImportUploadForm(request.POST or None, request.FILES or None, owner=request.user)
        if request.method == "POST" and form.is_valid():
            try:
                job = jobs.create_job(
                    owner=request.user,
                    uploaded_file=form.cleaned_data["file"],
                    contact_list=form.cleaned_data["contact_list"],
                    new_list_name=form.cleaned_data["new_list_name"],
                    encoding=form.cleaned_data["encoding"],
                )
            except jobs.ImportRefused as exc:
                form.add_error("file", str(exc))
            else:
                return redirect("admin:contacts_importjob_preview", job.pk)
        return self._render(
            request,
            "admin/contacts/importjob/import_form.html",
            form=form,
            title="Import contacts",
            media=self.media + form.media,
        )

    def preview_view(self, request, object_id):
        from django.contrib import messages
        from django.core.exceptions import PermissionDenied
        from django.shortcuts import redirect

        job = jobs.expire_if_unconfirmed(job=self._job(request, object_id))
        if request.method == "POST":
            if not self.has_add_permission(request):
                raise PermissionDenied
            if "cancel" in request.POST:
                jobs.cancel(job=job)
                self.message_user(request, "Import cancelled; nothing was written.", messages.INFO)
                return redirect("admin:contacts_contact_changelist")
            try:
                started = jobs.confirm(job=job)
            except jobs.ImportRefused as exc:
                self.message_user(request, str(exc), messages.ERROR)
                return redirect("admin:contacts_importjob_preview", job.pk)
            if started:
                if job.status == ImportJob.Status.DONE:
                    self.message_user(request, f"Imported {job.original_name}.", messages.SUCCESS)
                else:
                    self.message_user(
                        request, "The import runs in the background: you may leave this page.", messages.INFO
                    )
            return redirect("admin:contacts_importjob_change", job.pk)
        if job.status in ImportJob.READING_STATUSES:
            return self._render(
                request, "admin/contacts/importjob/import_reading.html", job=job, title=f"Reading {job.original_name}"
            )
        if job.status != ImportJob.Status.PREVIEWED:
            return redirect("admin:contacts_importjob_change", job.pk)
        return self._render(
            request,
            "admin/contacts/importjob/import_preview.html",
            job=job,
            title=f"Preview: {job.original_name}",
            background=jobs.runs_in_background(job),
            counts=job.preview.get("counts", {}),
            nothing_to_import=not jobs.importable_rows(job),
            page=jobs.preview_page(job, page=_page_number(request)),
            attribute_keys=job.preview.get("attribute_keys", []),
        )

    def change_view(self, request, object_id, form_url="", extra_context=None):
        from django.shortcuts import redirect

        job = jobs.expire_if_unconfirmed(job=self._job(request, object_id))
        if job.status in (*ImportJob.READING_STATUSES, ImportJob.Status.PREVIEWED):
            return redirect("admin:contacts_importjob_preview", job.pk)

        return self._render(
            request,
            "admin/contacts/importjob/import_job.html",
            job=job,
            title=f"Import: {job.original_name}",
            job_counts=jobs.status_payload(job)["counts"],
        )

    def status_view(self, request, object_id):
        from django.http import JsonResponse

        job = self._job(request, object_id)
        response = JsonResponse(jobs.status_payload(job))
        response["Cache-Control"] = "no-store"
        return response

    def report_view(self, request, object_id):

        job = self._job(request, object_id)
        file_format = "xlsx" if request.GET.get("format") == "xlsx" else "csv"
        headers, rows = jobs.rejected_report_rows(job)
        return exports.download(
            headers=headers,
            rows=rows,
            file_format=file_format,
            name=f"rejected-rows-{job.original_name.rsplit('.', 1)[0]}",
        )

    def delete_model(self, request, obj):
        jobs.delete_upload(job_id=obj.pk)
        super().delete_model(request, obj)

    def delete_queryset(self, request, queryset):
        for job_id in queryset.values_list("pk", flat=True):
            jobs.delete_upload(job_id=job_id)
        super().delete_queryset(request, queryset)


def _page_number(request):
    try:
        return int(request.GET.get("page", "1"))
    except ValueError:
        return 1


@admin.register(SubscriptionForm)
class SubscriptionFormAdmin(OwnedModelAdmin):
    form = SubscriptionFormAdminForm
    list_display = ("title", "contact_list", "double_opt_in", "enabled", "hosted_page")
    list_filter = ("enabled", "double_opt_in", "contact_list")
    list_select_related = ("contact_list",)
    search_fields = ("title",)
    readonly_fields = ("hosted_page", "embed_snippet", "created_at", "updated_at")
    fieldsets = (
        (None, {"fields": ("owner", "title", "contact_list", "smtp_account", "enabled")}),
        ("What it asks", {"fields": ("attributes_asked", "consent_text", "double_opt_in")}),
        ("Publish", {"fields": ("hosted_page", "embed_snippet")}),
    )

    @admin.display(description="Hosted page")
    def hosted_page(self, obj):
        if obj is None or obj.pk is None:
            return "Shown once the form is saved."
        url = embed.hosted_url(form=obj)
        return format_html('<a href="{}" target="_blank" rel="noopener">{}</a>', url, url)

    @admin.display(description="Embeddable HTML")
    def embed_snippet(self, obj):
        if obj is None or obj.pk is None:
            return "Shown once the form is saved."
        return format_html(
            '<textarea readonly rows="16" cols="100" wrap="off" id="embed-snippet" '
            'style="font-family: monospace; font-size: 12px; width: 100%">{}</textarea>'
            "<p>Paste this plain HTML form into any page; it needs no JavaScript. "
            "Submissions, errors and the confirmation show on the hosted page.</p>",
            embed.snippet_html(form=obj),
        )
