from django.contrib import admin
from django.db.models import Count, Prefetch, Q
from django.urls import reverse
from django.utils.html import format_html

from accounts.owned_admin import OwnedModelAdmin, scope_to_user
from campaigns import admin_actions
from campaigns.models import Campaign, Contact, ContactList, Email, EmailTemplate
from tracking.models import Event, Link


class ReadOnlyAdminMixin:
    """The ledger is written by the sending engine only."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Contact)
class ContactAdmin(OwnedModelAdmin):
    list_display = ("email", "name", "status", "list_names", "created_at")
    list_filter = ("status", "lists", "created_at")
    search_fields = ("email", "name")
    readonly_fields = ("status_changed_at", "created_at", "updated_at")

    def get_queryset(self, request):
        # Only the user's own lists: a contact may sit in another owner's list (put
        # there by a superuser), whose name must not show in the Lists column.
        own_lists = scope_to_user(ContactList.objects.all(), request.user)
        return super().get_queryset(request).prefetch_related(Prefetch("lists", queryset=own_lists))

    @admin.display(description="Lists")
    def list_names(self, obj):
        return ", ".join(contact_list.name for contact_list in obj.lists.all())


@admin.register(ContactList)
class ContactListAdmin(OwnedModelAdmin):
    list_display = ("name", "contact_count", "subscribed_count", "created_at")
    search_fields = ("name", "description")
    autocomplete_fields = ("contacts",)

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .annotate(
                contact_count=Count("contacts", distinct=True),
                subscribed_count=Count(
                    "contacts", filter=Q(contacts__status=Contact.Status.SUBSCRIBED), distinct=True
                ),
            )
        )

    @admin.display(description="Contacts", ordering="contact_count")
    def contact_count(self, obj):
        return obj.contact_count

    @admin.display(description="Subscribed", ordering="subscribed_count")
    def subscribed_count(self, obj):
        return obj.subscribed_count


@admin.register(EmailTemplate)
class EmailTemplateAdmin(OwnedModelAdmin):
    list_display = ("name", "subject", "updated_at")
    search_fields = ("name", "subject")


@admin.register(Campaign)
class CampaignAdmin(OwnedModelAdmin):
    list_display = (
        "name", "status", "smtp_account", "scheduled_at", "recipient_count", "sent_count", "failed_count",
        "started_at", "completed_at",
    )
    list_filter = ("status", "smtp_account", "lists", "created_at")
    list_select_related = ("smtp_account",)
    search_fields = ("name", "subject")
    filter_horizontal = ("lists",)
    readonly_fields = (
        "status", "status_reason", "started_at", "completed_at", "created_at", "updated_at", "email_link",
    )
    fieldsets = (
        (None, {"fields": ("owner", "name", "smtp_account", "lists")}),
        ("Message", {"fields": ("subject", "body_html", "body_text", "track_opens", "track_clicks")}),
        (
            "Schedule",
            {"fields": ("scheduled_at", "status", "status_reason", "started_at", "completed_at", "email_link")},
        ),
    )
    actions = admin_actions.CAMPAIGN_ACTIONS
    # Once a campaign leaves draft, what it sends is fixed: the lifecycle actions change it, not the form.
    frozen_after_draft = ("owner", "smtp_account", "lists", "subject", "body_html", "body_text", "track_opens",
                          "track_clicks", "scheduled_at")

    def get_readonly_fields(self, request, obj=None):
        readonly = list(super().get_readonly_fields(request, obj))
        if obj is not None and obj.status != Campaign.Status.DRAFT:
            readonly += [f for f in self.frozen_after_draft if f != "owner" or request.user.is_superuser]
        return readonly

    def has_delete_permission(self, request, obj=None):
        # A campaign being sent cannot be deleted under its workers; pause or cancel it first.
        if obj is not None and obj.status == Campaign.Status.SENDING:
            return False
        return super().has_delete_permission(request, obj)

    def get_deleted_objects(self, objs, request):
        # Its emails, links and events go with it; they are read-only to the marketer on their own,
        # which must not stop the campaign's owner from deleting it.
        deleted, model_count, perms_needed, protected = super().get_deleted_objects(objs, request)
        ledger_names = {m._meta.verbose_name for m in (Email, Link, Event)}
        return deleted, model_count, {p for p in perms_needed if p not in ledger_names}, protected

    # Fields missing from a user's form (the owner, for marketers) are dropped from
    # these fieldsets by OwnedModelAdmin.get_fieldsets.

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .annotate(
                recipient_count=Count("emails"),
                sent_count=Count("emails", filter=Q(emails__status=Email.Status.SENT)),
                failed_count=Count("emails", filter=Q(emails__status=Email.Status.FAILED)),
            )
        )

    @admin.display(description="Recipients", ordering="recipient_count")
    def recipient_count(self, obj):
        return obj.recipient_count

    @admin.display(description="Sent", ordering="sent_count")
    def sent_count(self, obj):
        return obj.sent_count

    @admin.display(description="Failed", ordering="failed_count")
    def failed_count(self, obj):
        return obj.failed_count

    @admin.display(description="Recipients")
    def email_link(self, obj):
        if obj.pk is None:
            return "—"
        url = reverse("admin:campaigns_email_changelist") + f"?campaign__id__exact={obj.pk}"
        return format_html('<a href="{}">{} recipient(s)</a>', url, obj.emails.count())


@admin.register(Email)
class EmailAdmin(ReadOnlyAdminMixin, OwnedModelAdmin):
    list_display = (
        "to_email", "campaign", "status", "attempts", "sent_at", "smtp_code", "smtp_response", "first_opened_at",
        "click_count",
    )
    list_filter = ("status", "failure_class", "campaign")
    list_select_related = ("campaign",)
    search_fields = ("to_email",)
    show_full_result_count = False
    actions = admin_actions.EMAIL_ACTIONS
