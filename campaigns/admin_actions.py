"""Admin actions for campaigns and their emails: each one calls a lifecycle service.

Querysets reaching an action come from the owner-scoped admin, so a marketer
can only ever act on their own campaigns.
"""

from collections import defaultdict

from django.contrib import admin, messages

from campaigns.models import Campaign
from campaigns.services import lifecycle


def _each(modeladmin, request, queryset, service, done, **kwargs):
    ok = 0
    for campaign in queryset.select_related("smtp_account", "owner"):
        try:
            service(campaign=campaign, **kwargs)
            ok += 1
        except lifecycle.LifecycleError as exc:
            modeladmin.message_user(request, f"{campaign.name}: {exc}", messages.ERROR)
    if ok:
        modeladmin.message_user(request, f"{ok} campaign(s) {done}.", messages.SUCCESS)


@admin.action(description="Schedule selected drafts at their scheduled time (now if blank)")
def schedule(modeladmin, request, queryset):
    ok = 0
    for campaign in queryset.select_related("smtp_account", "owner"):
        try:
            lifecycle.schedule(campaign=campaign, at=campaign.scheduled_at)
            ok += 1
        except lifecycle.LifecycleError as exc:
            modeladmin.message_user(request, f"{campaign.name}: {exc}", messages.ERROR)
    if ok:
        modeladmin.message_user(request, f"{ok} campaign(s) scheduled.", messages.SUCCESS)


@admin.action(description="Send selected now")
def send_now(modeladmin, request, queryset):
    _each(modeladmin, request, queryset, lifecycle.send_now, "started")


@admin.action(description="Pause selected")
def pause(modeladmin, request, queryset):
    _each(modeladmin, request, queryset, lifecycle.pause, "paused", reason="Paused by the owner")


@admin.action(description="Resume selected")
def resume(modeladmin, request, queryset):
    _each(modeladmin, request, queryset, lifecycle.resume, "resumed")


@admin.action(description="Cancel selected (unsent emails are dropped for good)")
def cancel(modeladmin, request, queryset):
    _each(modeladmin, request, queryset, lifecycle.cancel, "cancelled")


@admin.action(description="Duplicate selected as new drafts")
def duplicate(modeladmin, request, queryset):
    for campaign in queryset:
        lifecycle.duplicate(campaign=campaign)
    modeladmin.message_user(request, f"{queryset.count()} campaign(s) duplicated.", messages.SUCCESS)


def _may_retry(modeladmin, request, campaign):
    # A cancelled campaign sends nothing more: the dispatcher's next tick cancels every row it
    # has open, so a retried row would lose its failure record (status, class, attempts) and
    # never be sent, while the message said it would be.
    if campaign.status == Campaign.Status.CANCELLED:
        modeladmin.message_user(
            request, f"{campaign.name}: a cancelled campaign sends nothing more; duplicate it to send again.",
            messages.ERROR,
        )
        return False
    return True


@admin.action(description="Retry all failed emails of selected")
def retry_failed(modeladmin, request, queryset):
    retried = [
        lifecycle.retry_failed(campaign=campaign) for campaign in queryset if _may_retry(modeladmin, request, campaign)
    ]
    if retried:
        modeladmin.message_user(request, f"{sum(retried)} failed email(s) will be sent again.", messages.SUCCESS)


@admin.action(description="Extend selected to contacts added to their lists since")
def extend(modeladmin, request, queryset):
    total = 0
    for campaign in queryset:
        try:
            total += lifecycle.extend_to_new_contacts(campaign=campaign)
        except lifecycle.LifecycleError as exc:
            modeladmin.message_user(request, f"{campaign.name}: {exc}", messages.ERROR)
    modeladmin.message_user(request, f"{total} new recipient(s) added.", messages.SUCCESS)


CAMPAIGN_ACTIONS = [schedule, send_now, pause, resume, cancel, duplicate, retry_failed, extend]


def _by_campaign(queryset):
    groups = defaultdict(list)
    for email in queryset.select_related("campaign"):
        groups[email.campaign].append(email.pk)
    return groups


@admin.action(description="Retry selected failed emails")
def retry_selected_emails(modeladmin, request, queryset):
    retried = [
        lifecycle.retry_failed(campaign=campaign, email_ids=ids)
        for campaign, ids in _by_campaign(queryset).items()
        if _may_retry(modeladmin, request, campaign)
    ]
    if retried:
        modeladmin.message_user(request, f"{sum(retried)} failed email(s) will be sent again.", messages.SUCCESS)


@admin.action(description="Remove selected pending recipients")
def remove_selected_pending(modeladmin, request, queryset):
    total = sum(
        lifecycle.remove_pending(campaign=campaign, email_ids=ids) for campaign, ids in _by_campaign(queryset).items()
    )
    modeladmin.message_user(request, f"{total} pending recipient(s) removed.", messages.SUCCESS)


EMAIL_ACTIONS = [retry_selected_emails, remove_selected_pending]
