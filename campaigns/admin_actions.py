"""Admin actions for campaigns, their emails and contacts: each one calls a service.

Querysets reaching an action come from the owner-scoped admin, so a marketer
can only ever act on their own campaigns.
"""

from collections import defaultdict

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html

from campaigns import admin_compose, admin_review
from campaigns.models import Campaign
from campaigns.selectors import audience
from campaigns.services import lifecycle
from delivery import tasks


def _warn(modeladmin, request, campaign):
    for warning in admin_compose.campaign_warnings(campaign):
        modeladmin.message_user(request, f"{campaign.name}: {warning}", messages.WARNING)


def _confirm_schedule(modeladmin, request, campaign):
    when = timezone.localtime(campaign.scheduled_at)
    count = audience.audience_count(campaign=campaign)
    modeladmin.message_user(
        request,
        f"{campaign.name}: scheduled for {when:%Y-%m-%d %H:%M} ({timezone.get_current_timezone_name()}), "
        f"to {count} recipient(s) as of now.",
        messages.INFO,
    )


def _each(modeladmin, request, queryset, service, done, *, reports=(), **kwargs):
    """Run a lifecycle service on each campaign: one error message per refusal, one summary.

    `reports` are told about each campaign the service accepted, as it returned it.
    """
    ok = 0
    for campaign in queryset.select_related("smtp_account", "owner"):
        try:
            campaign = service(campaign=campaign, acting_user=request.user, **kwargs)
            ok += 1
            for report in reports:
                report(modeladmin, request, campaign)
        except lifecycle.LifecycleError as exc:
            modeladmin.message_user(request, f"{campaign.name}: {exc}", messages.ERROR)
    if ok:
        modeladmin.message_user(request, f"{ok} campaign(s) {done}.", messages.SUCCESS)


def _confirmation(modeladmin, request, queryset, *, step, action, title, button, summary):
    """Django's intermediate page for an action that cannot be undone: what it will do to each
    campaign, with its figure; None once the page's "Yes" came back (the action then runs)."""
    if request.POST.get("post") == "yes":
        return None
    campaigns = list(queryset.select_related("smtp_account", "owner"))
    unsent = {c.pk: audience.unsent_count(campaign=c) for c in campaigns}
    lines = [(c.name, admin_review.what_will_happen(step=step, campaign=c, unsent=unsent[c.pk])) for c in campaigns]
    context = {
        **modeladmin.admin_site.each_context(request),
        "opts": modeladmin.model._meta,
        "title": title,
        "queryset": campaigns,
        "lines": lines,
        "summary": summary(len(campaigns), sum(unsent.values())),
        "button": button,
        "action": action,
        "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
        "media": modeladmin.media,
    }
    return TemplateResponse(request, "admin/campaigns/campaign/action_confirmation.html", context)


def _schedule_at_its_time(*, campaign, acting_user):
    return lifecycle.schedule(campaign=campaign, at=campaign.scheduled_at, acting_user=acting_user)


@admin.action(description="Schedule selected drafts at their scheduled time (now if blank)")
def schedule(modeladmin, request, queryset):
    page = _confirmation(
        modeladmin,
        request,
        queryset,
        step="schedule",
        action="schedule",
        title="Schedule these drafts?",
        button="Yes, schedule them",
        summary=lambda n, emails: f"{n} campaign(s), {emails:,} email(s) as of now, will be scheduled.",
    )
    if page is not None:
        return page
    _each(
        modeladmin,
        request,
        queryset,
        _schedule_at_its_time,
        "scheduled",
        reports=(_confirm_schedule, _warn),
    )


@admin.action(description="Send selected now")
def send_now(modeladmin, request, queryset):
    page = _confirmation(
        modeladmin,
        request,
        queryset,
        step="send_now",
        action="send_now",
        title="Send these campaigns now?",
        button="Yes, send them now",
        summary=lambda n, emails: f"{emails:,} email(s) of {n} campaign(s) will go out now.",
    )
    if page is not None:
        return page
    _each(
        modeladmin,
        request,
        queryset,
        lifecycle.send_now,
        "started",
        reports=(_warn,),
        dispatch_now=tasks.dispatch_now,
    )


@admin.action(description="Pause selected")
def pause(modeladmin, request, queryset):
    _each(modeladmin, request, queryset, lifecycle.pause, "paused", reason="Paused by the owner")


@admin.action(description="Resume selected")
def resume(modeladmin, request, queryset):
    _each(modeladmin, request, queryset, lifecycle.resume, "resumed", dispatch_now=tasks.dispatch_now)


@admin.action(description="Cancel selected (unsent emails are dropped for good)")
def cancel(modeladmin, request, queryset):
    page = _confirmation(
        modeladmin,
        request,
        queryset,
        step="cancel",
        action="cancel",
        title="Cancel these campaigns for good?",
        button="Yes, cancel them for good",
        summary=lambda n, emails: f"{emails:,} unsent email(s) of {n} campaign(s) will be dropped for good.",
    )
    if page is not None:
        return page
    _each(modeladmin, request, queryset, lifecycle.cancel, "cancelled")


@admin.action(description="Duplicate selected as new drafts")
def duplicate(modeladmin, request, queryset):
    for campaign in queryset:
        copy = lifecycle.duplicate(campaign=campaign)
        url = reverse("admin:campaigns_campaign_change", args=[copy.pk])
        modeladmin.message_user(
            request, format_html('Campaign “<a href="{}">{}</a>” created.', url, copy.name), messages.SUCCESS
        )


@admin.action(description="Resend selected completed campaigns to their non-openers (new drafts)")
def resend_to_non_openers(modeladmin, request, queryset):
    created = []
    for campaign in queryset:
        try:
            created.append(lifecycle.resend_to_non_openers(campaign=campaign))
        except lifecycle.LifecycleError as exc:
            modeladmin.message_user(request, f"{campaign.name}: {exc}", messages.ERROR)
    for draft in created:
        count = audience.audience_count(campaign=draft)
        modeladmin.message_user(
            request,
            f"{draft.name}: a new draft, to {count} contact(s) who have not opened the first one so far. "
            "Change its subject if you like, then schedule it.",
            messages.SUCCESS,
        )
    if len(created) == 1:
        # Straight to the new draft: the subject is usually what changes before it goes out.
        return redirect(reverse("admin:campaigns_campaign_change", args=[created[0].pk]))
    return None


def _retry(modeladmin, request, pairs):
    """pairs: (campaign, email_ids or None); one message for what was retried, one per refusal."""
    retried, done = 0, 0
    for campaign, email_ids in pairs:
        try:
            retried += lifecycle.retry_failed(campaign=campaign, email_ids=email_ids, acting_user=request.user)
            done += 1
        except lifecycle.LifecycleError as exc:
            modeladmin.message_user(request, f"{campaign.name}: {exc}", messages.ERROR)
    if done:
        modeladmin.message_user(request, f"{retried} failed email(s) will be sent again.", messages.SUCCESS)


@admin.action(description="Retry all failed emails of selected")
def retry_failed(modeladmin, request, queryset):
    _retry(modeladmin, request, [(campaign, None) for campaign in queryset])


@admin.action(description="Extend selected to contacts added to their lists or segments since")
def extend(modeladmin, request, queryset):
    total, done, preparing = 0, 0, 0
    for campaign in queryset:
        try:
            total += lifecycle.extend_to_new_contacts(campaign=campaign, acting_user=request.user)
            done += 1
            preparing += Campaign.objects.filter(pk=campaign.pk, recipients_cursor__isnull=False).exists()
        except lifecycle.LifecycleError as exc:
            modeladmin.message_user(request, f"{campaign.name}: {exc}", messages.ERROR)
    if done:
        # A large list is gone through in chunks: the dispatcher adds the rest while it sends.
        rest = f" so far; the rest of {preparing} campaign(s) is being written" if preparing else ""
        modeladmin.message_user(request, f"{total} new recipient(s) added{rest}.", messages.SUCCESS)


@admin.action(description="Back to draft (unschedule selected)")
def unschedule(modeladmin, request, queryset):
    _each(modeladmin, request, queryset, lifecycle.unschedule, "back to draft")


CAMPAIGN_ACTIONS = [
    schedule,
    unschedule,
    send_now,
    pause,
    resume,
    cancel,
    duplicate,
    resend_to_non_openers,
    retry_failed,
    extend,
]


def _by_campaign(queryset):
    groups = defaultdict(list)
    for email in queryset.select_related("campaign"):
        groups[email.campaign].append(email.pk)
    return groups


@admin.action(description="Retry selected failed emails")
def retry_selected_emails(modeladmin, request, queryset):
    _retry(modeladmin, request, list(_by_campaign(queryset).items()))


@admin.action(description="Remove selected pending recipients")
def remove_selected_pending(modeladmin, request, queryset):
    removed, in_flight = 0, 0
    for campaign, ids in _by_campaign(queryset).items():
        campaign_removed, campaign_in_flight = lifecycle.remove_pending(campaign=campaign, email_ids=ids)
        removed, in_flight = removed + campaign_removed, in_flight + campaign_in_flight
    modeladmin.message_user(request, f"{removed} pending recipient(s) removed.", messages.SUCCESS)
    if in_flight:
        modeladmin.message_user(
            request,
            f"{in_flight} selected recipient(s) are in flight: a worker holds their batch, so they were not removed "
            "and go out with it. Any that come back unsent (deferred) can be removed then.",
            messages.WARNING,
        )


EMAIL_ACTIONS = [retry_selected_emails, remove_selected_pending]
