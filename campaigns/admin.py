import json

from django.contrib import admin
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseNotAllowed, JsonResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from accounts.models import User
from accounts.owned_admin import OwnedInlineMixin, OwnedModelAdmin, ReadOnlyAdminMixin, without_fields
from campaigns import admin_actions, export_actions
from campaigns.admin_compose import CAMPAIGN_COMPOSE_ACTIONS, CampaignComposeMixin, EmailTemplateComposeMixin
from campaigns.admin_review import CampaignReviewMixin, lifecycle_buttons
from campaigns.forms import SegmentConditionForm, segment_form_rules
from campaigns.models import (
    Campaign,
    CampaignEvent,
    Email,
    EmailTemplate,
    Segment,
    SegmentCondition,
)
from campaigns.selectors import audience, campaign_list, segments
from sending import selectors as sending_selectors
from tracking.models import Event, Link


@admin.register(EmailTemplate)
class EmailTemplateAdmin(EmailTemplateComposeMixin, OwnedModelAdmin):
    list_display = ("name", "subject", "updated_at")
    search_fields = ("name", "subject")


HISTORY_ROWS = 100
NOT_STARTED_RECIPIENTS = "Not started yet: its page counts who it would go to."


@admin.register(Campaign)
class CampaignAdmin(CampaignReviewMixin, CampaignComposeMixin, OwnedModelAdmin):
    change_form_template = "admin/campaigns/campaign/change_form.html"
    list_display = (
        "name",
        "status_and_preparation",
        "smtp_account",
        "scheduled_for_list",
        "recipient_count",
        "sent_count",
        "failed_count",
        "started_at",
        "completed_at",
        "analytics_link",
    )
    list_filter = ("status", "smtp_account", "lists", "created_at")
    list_select_related = ("smtp_account",)
    search_fields = ("name", "subject")
    filter_horizontal = ("lists", "segments")
    readonly_fields = (
        "scheduled_for",
        "status",
        "status_reason",
        "preparation",
        "started_at",
        "completed_at",
        "created_at",
        "updated_at",
        "email_link",
        "history",
        "source_campaign",
    )
    fieldsets = (
        (None, {"fields": ("owner", "name", "smtp_account", "lists", "segments", "source_campaign")}),
        (
            "Message",
            {
                "fields": (
                    "subject",
                    "body_html",
                    "body_text",
                    "text_only",
                    "track_opens",
                    "track_clicks",
                    "custom_headers",
                )
            },
        ),
        (
            "Schedule",
            {
                "fields": (
                    "scheduled_for",
                    "status",
                    "preparation",
                    "status_reason",
                    "started_at",
                    "completed_at",
                    "email_link",
                )
            },
        ),
        ("History", {"fields": ("history",)}),
    )
    actions = admin_actions.CAMPAIGN_ACTIONS + export_actions.CAMPAIGN_EXPORT_ACTIONS + CAMPAIGN_COMPOSE_ACTIONS
    # Once a campaign leaves draft, what it sends is fixed: the lifecycle actions change it, not the form.
    frozen_after_draft = (
        "owner",
        "smtp_account",
        "lists",
        "segments",
        "subject",
        "body_html",
        "body_text",
        "text_only",
        "track_opens",
        "track_clicks",
        "custom_headers",
    )

    def get_readonly_fields(self, request, obj=None):
        readonly = list(super().get_readonly_fields(request, obj))
        if obj is not None and obj.status != Campaign.Status.DRAFT:
            readonly += [f for f in self.frozen_after_draft if f != "owner" or request.user.is_superuser]
        return readonly

    def get_fieldsets(self, request, obj=None):
        fieldsets = super().get_fieldsets(request, obj)
        if obj is None or not obj.is_preparing:
            fieldsets = without_fields(fieldsets, {"preparation"})
        if obj is None or not obj.source_rule:
            return without_fields(fieldsets, {"source_campaign"})
        # A resend goes to its source's non-openers (campaigns.selectors.audience), never to lists or segments.
        return without_fields(fieldsets, {"lists", "segments"})

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        can_change = obj is not None and self.has_change_permission(request, obj)
        context["lifecycle_steps"] = lifecycle_buttons(obj) if can_change else []
        return super().render_change_form(request, context, add, change, form_url, obj)

    @admin.display(description="Scheduled for")
    def scheduled_for(self, obj):
        # Saving the form never schedules: the time is set, with the checks, on Review and send.
        when = "—"
        if obj.scheduled_at is not None and obj.status in (Campaign.Status.SCHEDULED, Campaign.Status.PAUSED):
            when = f"{timezone.localtime(obj.scheduled_at):%Y-%m-%d %H:%M} ({timezone.get_current_timezone_name()})"
        if obj.pk is None or obj.status != Campaign.Status.DRAFT:
            return when
        url = reverse("admin:campaigns_campaign_review", args=[obj.pk])
        return format_html('{} <a href="{}">Schedule it from Review and send</a>', when, url)

    @admin.display(description="Scheduled for", ordering="scheduled_at")
    def scheduled_for_list(self, obj):
        # Only a time it will go out at: a draft's old time would read as if it were due.
        if obj.status == Campaign.Status.SCHEDULED or (obj.status == Campaign.Status.PAUSED and not obj.started_at):
            return timezone.localtime(obj.scheduled_at)
        return None

    def get_changeform_initial_data(self, request):
        initial = super().get_changeform_initial_data(request)
        if "smtp_account" not in initial:
            only = sending_selectors.only_account_of(owner=request.user)
            if only is not None:
                initial["smtp_account"] = only
        return initial

    def has_delete_permission(self, request, obj=None):
        # A campaign being sent cannot be deleted under its workers; pause or cancel it first.
        if obj is not None and obj.status == Campaign.Status.SENDING:
            return False
        return super().has_delete_permission(request, obj)

    def get_deleted_objects(self, objs, request):
        # Its emails, links, events and history go with it; they are read-only to the marketer on their own,
        # which must not stop the campaign's owner from deleting it.
        deleted, model_count, perms_needed, protected = super().get_deleted_objects(objs, request)
        ledger_names = {m._meta.verbose_name for m in (Email, Link, Event, CampaignEvent)}
        return deleted, model_count, {p for p in perms_needed if p not in ledger_names}, protected

    # Fields missing from a user's form (the owner, for marketers) are dropped from
    # these fieldsets by OwnedModelAdmin.get_fieldsets.

    def get_queryset(self, request):
        return campaign_list.with_email_counts(campaigns=super().get_queryset(request))

    @admin.display(description="Status", ordering="status")
    def status_and_preparation(self, obj):
        preparing = audience.describe_preparation(audience.preparation_progress(campaign=obj))
        return f"{obj.get_status_display()}: {preparing}" if preparing else obj.get_status_display()

    @admin.display(description="Recipients being written")
    def preparation(self, obj):
        # A large campaign's recipients are written in chunks while it sends (lifecycle.prepare_recipients).
        return audience.describe_preparation(audience.preparation_progress(campaign=obj)) or "—"

    @admin.display(description="Recipients", ordering="recipient_count")
    def recipient_count(self, obj):
        if obj.started_at is None and not obj.recipient_count:
            # No email rows before the start: a 0 here would contradict the page's "Would go to N", and
            # counting each draft's audience would cost a query per row.
            return format_html('<span title="{}">—</span>', NOT_STARTED_RECIPIENTS)
        return obj.recipient_count

    @admin.display(description="Sent", ordering="sent_count")
    def sent_count(self, obj):
        return obj.sent_count

    @admin.display(description="Failed", ordering="failed_count")
    def failed_count(self, obj):
        return obj.failed_count

    @admin.display(description="Analytics")
    def analytics_link(self, obj):
        return format_html('<a href="{}">Analytics</a>', reverse("campaign_analytics", args=[obj.pk]))

    @admin.display(description="Recipients")
    def email_link(self, obj):
        if obj.pk is None:
            return "—"
        if obj.started_at is None and obj.status in (
            Campaign.Status.DRAFT,
            Campaign.Status.SCHEDULED,
            Campaign.Status.PAUSED,
        ):
            # No email rows before the start: show who would get it, as the start will count them.
            count = audience.audience_count(campaign=obj)
            return f"Would go to {count} recipient(s): {audience.describe_audience(campaign=obj)}."
        url = reverse("admin:campaigns_email_changelist") + f"?campaign__id__exact={obj.pk}"
        return format_html('<a href="{}">{} recipient(s)</a>', url, obj.recipient_count)

    @admin.display(description="Status changes")
    def history(self, obj):
        events = obj.status_events.select_related("acting_user")[:HISTORY_ROWS] if obj.pk else []
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{} → {}</td><td>{}</td><td>{}</td></tr>",
            (
                (
                    f"{timezone.localtime(e.at):%Y-%m-%d %H:%M:%S}",
                    e.get_from_status_display(),
                    e.get_to_status_display(),
                    e.acting_user.username if e.acting_user else "the system",
                    e.reason,
                )
                for e in events
            ),
        )
        if not rows:
            return "—"
        return format_html("<table><tr><th>When</th><th>Status</th><th>By</th><th>Why</th></tr>{}</table>", rows)


@admin.register(Email)
class EmailAdmin(ReadOnlyAdminMixin, OwnedModelAdmin):
    list_display = (
        "to_email",
        "campaign_name",
        "status",
        "attempts",
        "sent_at",
        "smtp_code",
        "smtp_response",
        "first_opened_at",
        "click_count",
    )
    list_filter = ("status", "failure_class", "bounce_kind", "campaign")
    list_select_related = ("campaign",)
    search_fields = ("to_email",)
    show_full_result_count = False
    actions = admin_actions.EMAIL_ACTIONS

    @admin.display(description="Campaign", ordering="campaign__name")
    def campaign_name(self, obj):
        # Cut with an ellipsis by static/css/admin.css: the title holds the whole name.
        return format_html('<span title="{}">{}</span>', obj.campaign.name, obj.campaign.name)


class SegmentConditionInline(OwnedInlineMixin, admin.TabularInline):
    model = SegmentCondition
    form = SegmentConditionForm
    template = "admin/campaigns/segment/condition_inline.html"
    verbose_name = "condition"
    verbose_name_plural = "Conditions"
    min_num = 1
    extra = 0


@admin.register(Segment)
class SegmentAdmin(OwnedModelAdmin):
    """A saved filter over contacts. Its conditions are an inline; the form's count of matching contacts is
    live (count_view, called by static/js/segment_form.js as the conditions change)."""

    inlines = (SegmentConditionInline,)
    change_form_template = "admin/campaigns/segment/change_form.html"
    list_display = ("name", "conditions_in_words", "matching_count", "subscribed_count", "updated_at")
    search_fields = ("name", "description")
    fieldsets = ((None, {"fields": ("owner", "name", "description", "match")}),)
    radio_fields = {"match": admin.HORIZONTAL}
    # Each row's counts are computed over the contacts: a short page stays quick however many there are.
    list_per_page = 25

    class Media:
        js = ("js/segment_form.js",)

    def get_queryset(self, request):
        return (
            super()
            .get_queryset(request)
            .select_related("owner")
            .prefetch_related(
                "conditions__contact_list",
                "conditions__campaign",
            )
        )

    def get_changelist_instance(self, request):
        changelist = super().get_changelist_instance(request)
        # One statement counts the whole page (selectors.segments.match_counts), not one per row.
        counts = segments.match_counts(segments=list(changelist.result_list))
        for segment in changelist.result_list:
            segment.matching, segment.subscribed = counts.get(segment.pk, (0, 0))
        return changelist

    @admin.display(description="Conditions")
    def conditions_in_words(self, obj):
        return segments.describe(segment=obj)

    @admin.display(description="Contacts")
    def matching_count(self, obj):
        return obj.matching

    @admin.display(description="Subscribed")
    def subscribed_count(self, obj):
        return obj.subscribed

    def get_urls(self):
        view = self.admin_site.admin_view
        return [
            path("count/", view(self.count_view), name="campaigns_segment_count"),
            path("<path:object_id>/count/", view(self.count_view), name="campaigns_segment_count"),
        ] + super().get_urls()

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        args = [obj.pk] if obj is not None and obj.pk else []
        context.update(
            count_url=reverse("admin:campaigns_segment_count", args=args),
            segment_rules=json.dumps(segment_form_rules()),
        )
        return super().render_change_form(request, context, add, change, form_url, obj)

    def count_view(self, request, object_id=None):
        """POST the segment's form as it is being edited: {"matching", "subscribed"} or {"errors"}, as JSON.

        CSRF-protected like every admin view; another owner's segment answers 404 (get_object), and the
        conditions' list and campaign choices are the user's own, as on the form.
        """
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        segment = self.get_object(request, unquote(object_id)) if object_id else None
        if segment is None:
            if not self.has_add_permission(request):
                raise PermissionDenied
            segment = Segment(owner=self._owner_for_new_segment(request))
        elif not self.has_view_or_change_permission(request, segment):
            raise PermissionDenied
        match = request.POST.get("match")
        segment.match = match if match in Segment.Match.values else Segment.Match.ALL
        formsets, _ = self._create_formsets(request, segment, change=segment.pk is not None)
        conditions, errors = [], []
        for formset in formsets:
            for number, form in enumerate(formset.forms, start=1):
                if not form.has_changed() and form.instance.pk is None:
                    continue  # a blank row added and left empty
                if not form.is_valid():
                    errors += [f"Condition {number}: {message}" for message in _form_messages(form)]
                elif not form.cleaned_data.get("DELETE"):
                    conditions.append(form.instance)
        # admin_view marks the answer no-store already (never_cache).
        if errors:
            return JsonResponse({"errors": errors})
        return JsonResponse(segments.count(owner_id=segment.owner_id, match=segment.match, conditions=conditions))

    def _owner_for_new_segment(self, request):
        if request.user.is_superuser and str(request.POST.get("owner", "")).isdigit():
            return User.objects.filter(pk=request.POST["owner"]).first() or request.user
        return request.user


def _form_messages(form):
    return [message for field_errors in form.errors.values() for message in field_errors]
