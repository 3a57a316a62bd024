"""Review and send: a campaign's own page before it goes out, and the confirmations of its lifecycle.

Mixed into CampaignAdmin (campaigns/admin.py) beside the compose mixin, whose test send it reuses.
Every view reaches its campaign through the owner-scoped get_object (another owner's campaign is a
404) and changes it through one service: campaigns.services.review to schedule or send (the
pre-flight checks computed again here, at the moment of the POST, never taken from the page),
campaigns.services.lifecycle to pause, resume, cancel or unschedule.
"""

from dataclasses import dataclass
from datetime import timedelta

from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponseNotAllowed, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone

from campaigns import personalize, preflight
from campaigns.forms import TestSendForm
from campaigns.models import Campaign
from campaigns.selectors import audience, link_checks, personalization
from campaigns.selectors import previews as preview_selectors
from campaigns.services import lifecycle, review
from campaigns.views import link_check_context
from delivery import preflight as synchronous_preflight
from delivery import previews, tasks

C = Campaign.Status
SAMPLE_RECIPIENTS = 3
TEST_SEND_REFRESH_SECONDS = 3


class ScheduleForm(forms.Form):
    """The time a campaign is scheduled for, typed in the marketer's own zone (the middleware
    activates it, and the field reads the input in it)."""

    scheduled_at = forms.DateTimeField(
        label="Send at",
        required=False,
        input_formats=["%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M"],
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
    )


@dataclass(frozen=True)
class Confirmation:
    """A lifecycle step confirmed on a page of its own: from which statuses, and what it does."""

    title: str
    question: str
    button: str
    allowed: tuple[str, ...]


CONFIRMATIONS = {
    "pause": Confirmation("Pause", "Pause this campaign?", "Yes, pause it", (C.SENDING, C.SCHEDULED)),
    "resume": Confirmation("Resume", "Resume this campaign?", "Yes, resume it", (C.PAUSED,)),
    "cancel": Confirmation(
        "Cancel",
        "Cancel this campaign for good?",
        "Yes, cancel it for good",
        (C.DRAFT, C.SCHEDULED, C.SENDING, C.PAUSED),
    ),
    "unschedule": Confirmation("Back to draft", "Take it back to draft?", "Yes, back to draft", (C.SCHEDULED,)),
}


def what_will_happen(*, step: str, campaign: Campaign, unsent: int | None = None) -> str:
    """The sentence a confirmation page and a bulk action's page state, with the figure it is about
    (`unsent`, audience.unsent_count, when the caller has it already)."""
    unsent = audience.unsent_count(campaign=campaign) if unsent is None else unsent
    started = campaign.started_at is not None
    when = _local(campaign.scheduled_at)
    if step == "pause":
        if not started:
            return f"It will not start at {when}; its {unsent:,} recipient(s) wait until you resume it."
        return (
            f"{unsent:,} unsent email(s) will wait until you resume it. A message a worker is sending this "
            "moment finishes first; nothing sent is undone."
        )
    if step == "resume":
        if not started:
            return (
                f"It is scheduled again for {when} (at once if that has passed), to {unsent:,} recipient(s) as of now."
            )
        return f"{unsent:,} unsent email(s) will be sent from where it stopped; none that was sent goes again."
    if step == "cancel" and campaign.status == C.DRAFT:
        return (
            f"It will never be sent: its {unsent:,} recipient(s) as of now will not receive it. This cannot be "
            "undone: to send it later, duplicate it."
        )
    if step == "cancel":
        return (
            f"{unsent:,} unsent email(s) will be dropped for good. This cannot be undone: to send it later, "
            "duplicate it."
        )
    if step == "unschedule":
        return f"It goes back to draft and will not go out at {when}; nothing is sent until you schedule it again."
    if step == "send_now":
        return f"{unsent:,} email(s) will go out now, through {campaign.smtp_account or 'no SMTP account'}."
    if step == "schedule":
        at = f"at {when}" if campaign.scheduled_at else "now (at the dispatcher's next tick)"
        return f"{unsent:,} email(s) will go out {at}, through {campaign.smtp_account or 'no SMTP account'}."
    raise ValueError(step)


def lifecycle_buttons(campaign: Campaign) -> list[str]:
    """The steps the campaign's page offers for its status, in the order shown."""
    steps = []
    if campaign.status == C.DRAFT:
        steps += ["schedule", "send_now"]
    steps += [
        step for step in ("unschedule", "pause", "resume", "cancel") if campaign.status in CONFIRMATIONS[step].allowed
    ]
    return steps


def _local(moment):
    return f"{timezone.localtime(moment):%Y-%m-%d %H:%M} ({timezone.get_current_timezone_name()})" if moment else "—"


def review_checks(*, campaign: Campaign, recipients: int) -> list[preflight.Check]:
    """Every pre-flight check of the campaign: those made here, then the link checks' (run in a worker)."""
    return [
        *synchronous_preflight.synchronous_checks(campaign=campaign, recipients=recipients),
        *link_checks.checks(campaign=campaign, now=timezone.now()),
    ]


class CampaignReviewMixin:
    def get_urls(self):
        opts = self.model._meta
        name = f"{opts.app_label}_{opts.model_name}"
        view = self.admin_site.admin_view
        return [
            path("<path:object_id>/review/", view(self.review_view), name=f"{name}_review"),
            path("<path:object_id>/confirm/<slug:step>/", view(self.confirm_view), name=f"{name}_confirm"),
        ] + super().get_urls()

    def _campaign(self, request, object_id, *, change):
        campaign = self.get_object(request, unquote(object_id))  # 404 for another owner's
        allowed = (
            self.has_change_permission(request, campaign) if change else self.has_view_permission(request, campaign)
        )
        if not allowed:
            raise PermissionDenied
        return campaign

    def review_view(self, request, object_id):
        campaign = self._campaign(request, object_id, change=request.method == "POST")
        review_url = reverse("admin:campaigns_campaign_review", args=[campaign.pk])
        form = ScheduleForm(initial={"scheduled_at": self._proposed_time(campaign)})
        test_form = TestSendForm(initial={"addresses": request.user.email})
        if request.method == "POST":
            step = request.POST.get("do")
            if step == "test":
                test_form = TestSendForm(request.POST)
                if test_form.is_valid():
                    contact = personalization.subscribed_contacts(campaign=campaign).first()
                    self._send_test(request, campaign, contact, test_form.cleaned_data["addresses"])
                    return HttpResponseRedirect(review_url + "#test-send")
            elif step in ("schedule", "send_now"):
                form = ScheduleForm(request.POST)
                if form.is_valid():
                    done = self._schedule_or_send(request, campaign, step, form)
                    if done:
                        return HttpResponseRedirect(reverse("admin:campaigns_campaign_change", args=[campaign.pk]))
            else:
                return HttpResponseNotAllowed(["GET"])
        return self._review_page(request, campaign, form, test_form, acknowledged=request.POST.getlist("acknowledged"))

    def _proposed_time(self, campaign):
        if campaign.scheduled_at and campaign.scheduled_at > timezone.now():
            return timezone.localtime(campaign.scheduled_at)
        soon = timezone.localtime() + timedelta(hours=1)
        return soon.replace(minute=0, second=0, microsecond=0)

    def _schedule_or_send(self, request, campaign, step, form):
        """Run the step through the review service; False (and the form's error) when it was refused."""
        recipients = audience.audience_count(campaign=campaign)
        checks = review_checks(campaign=campaign, recipients=recipients)
        acknowledged = set(request.POST.getlist("acknowledged"))
        try:
            if step == "schedule":
                at = form.cleaned_data["scheduled_at"]
                if at is None:
                    form.add_error("scheduled_at", "Choose when to send it, or use Send now.")
                    return False
                campaign = review.schedule_reviewed(
                    campaign=campaign, at=at, checks=checks, acknowledged=acknowledged, acting_user=request.user
                )
                self.message_user(
                    request,
                    f"Scheduled for {_local(campaign.scheduled_at)}, to {recipients:,} recipient(s) as of now.",
                    messages.SUCCESS,
                )
            else:
                campaign = review.send_reviewed(
                    campaign=campaign,
                    checks=checks,
                    acknowledged=acknowledged,
                    acting_user=request.user,
                    dispatch_now=tasks.dispatch_now,
                )
                self.message_user(request, f"Sending to {recipients:,} recipient(s) now.", messages.SUCCESS)
        except lifecycle.LifecycleError as exc:
            form.add_error(None, str(exc))
            return False
        return True

    def _review_page(self, request, campaign, form, test_form, *, acknowledged):
        breakdown = audience.breakdown(campaign=campaign)
        checks = review_checks(campaign=campaign, recipients=breakdown.recipients)
        samples, rendered, render_error = self._samples(campaign)
        account = campaign.smtp_account
        test_send = preview_selectors.last_test_send(campaign=campaign)
        waiting = preview_selectors.awaiting_outcome(test_send=test_send, now=timezone.now())
        can_change = self.has_change_permission(request, campaign)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "original": campaign,
            "title": "Review and send",
            "subtitle": campaign.name,
            "breakdown": breakdown,
            "account": account,
            "samples": samples,
            "rendered": rendered,
            "render_error": render_error,
            "variables": personalization.variable_uses(campaign=campaign),
            "errors": preflight.errors(checks),
            "warnings": preflight.warnings(checks),
            "acknowledged": set(acknowledged),
            "eta": synchronous_preflight.eta(campaign=campaign, recipients=breakdown.recipients, now=timezone.now()),
            "form": form,
            "zone": timezone.get_current_timezone_name(),
            "can_send": can_change and campaign.status == C.DRAFT,
            "blocked": bool(preflight.errors(checks)),
            "test_form": test_form,
            "can_send_test": can_change and account is not None,
            "test_send": test_send,
            "test_send_waiting": waiting,
            "refresh_seconds": TEST_SEND_REFRESH_SECONDS if waiting else None,
            "preview_url": reverse("admin:campaigns_campaign_preview", args=[campaign.pk]),
            **link_check_context(
                request, campaign, back=reverse("admin:campaigns_campaign_review", args=[campaign.pk])
            ),
        }
        response = TemplateResponse(request, "admin/campaigns/campaign/review.html", context)
        # The previews' srcdoc inherits this page's policy: let the email's remote images show.
        response["Content-Security-Policy"] = settings.CONTENT_SECURITY_POLICY_PREVIEW
        return response

    def _samples(self, campaign):
        """[(recipient, subject)] for a few recipients (a sample one when none), and the first's message."""
        contacts = list(personalization.subscribed_contacts(campaign=campaign)[:SAMPLE_RECIPIENTS]) or [None]
        samples, first, error = [], None, ""
        for contact in contacts:
            try:
                rendered = previews.preview(campaign=campaign, contact=contact)
            except personalize.PersonalizationError as exc:
                error = "; ".join(exc.messages)
                break
            who = str(contact) if contact else f"{previews.SAMPLE_NAME} <{previews.SAMPLE_EMAIL}>"
            samples.append((who, rendered.subject))
            first = first or rendered
        return samples, first, error

    def confirm_view(self, request, object_id, step):
        confirmation = CONFIRMATIONS.get(step)
        if confirmation is None:
            raise Http404("No such step.")
        campaign = self._campaign(request, object_id, change=True)
        change_url = reverse("admin:campaigns_campaign_change", args=[campaign.pk])
        if campaign.status not in confirmation.allowed:
            self.message_user(
                request,
                f"{confirmation.title}: not possible, this campaign is {campaign.get_status_display()}.",
                messages.ERROR,
            )
            return HttpResponseRedirect(change_url)
        if request.method == "POST":
            try:
                self._run_step(request, campaign, step)
            except lifecycle.LifecycleError as exc:
                self.message_user(request, str(exc), messages.ERROR)
            return HttpResponseRedirect(change_url)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "original": campaign,
            "title": confirmation.question,
            "subtitle": campaign.name,
            "confirmation": confirmation,
            "step": step,
            "consequence": what_will_happen(step=step, campaign=campaign),
            "change_url": change_url,
        }
        return TemplateResponse(request, "admin/campaigns/campaign/confirm_step.html", context)

    def _run_step(self, request, campaign, step):
        user = request.user
        if step == "pause":
            lifecycle.pause(campaign=campaign, reason="Paused by the owner", acting_user=user)
            self.message_user(request, "Paused. Resume it when you are ready.", messages.SUCCESS)
        elif step == "resume":
            lifecycle.resume(campaign=campaign, acting_user=user, dispatch_now=tasks.dispatch_now)
            self.message_user(request, "Resumed.", messages.SUCCESS)
        elif step == "cancel":
            lifecycle.cancel(campaign=campaign, acting_user=user, reason="Cancelled by the owner")
            self.message_user(request, "Cancelled: its unsent emails were dropped.", messages.SUCCESS)
        elif step == "unschedule":
            lifecycle.unschedule(campaign=campaign, acting_user=user)
            self.message_user(request, "Back to draft.", messages.SUCCESS)
