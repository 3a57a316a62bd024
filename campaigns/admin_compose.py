"""Composing in the admin: the editor forms, preview and test send, templates <-> campaigns.

Mixed into CampaignAdmin and EmailTemplateAdmin (campaigns/admin.py). Every view
reaches its campaign through the owner-scoped get_object: another owner's
campaign answers 404. Each view calls one service.
"""

from collections.abc import Callable, Sequence

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseBase, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html

from campaigns import personalize
from campaigns.editor import EditorPageMixin
from campaigns.forms import CampaignAdminForm, EmailTemplateAdminForm, TestSendForm
from campaigns.models import Campaign, EmailTemplate
from campaigns.selectors import personalization
from campaigns.selectors import previews as preview_selectors
from campaigns.services import templates
from delivery import previews, tasks

PREVIEW_CONTACT_CHOICES = 200
# The preview page reloads itself this often while its test send has no outcome yet.
TEST_SEND_REFRESH_SECONDS = 3


def campaign_warnings(campaign):
    """What may go wrong with the campaign as composed: its variables, then a short HTML with an image."""
    warnings = missing_variable_warnings(campaign)
    short = previews.short_html_with_image(campaign=campaign)
    if short is not None:
        warnings.append(previews.short_html_warning(campaign, short))
    return warnings


def missing_variable_warnings(campaign):
    """One warning for the variables no recipient has, one per variable some recipients lack."""
    coverage = personalization.variable_coverage(campaign=campaign)
    warnings = []
    if coverage.unknown:
        names = ", ".join("{{ %s }}" % name for name in coverage.unknown)
        warnings.append(
            f"No recipient of the chosen lists has {names}: it renders empty (or its default) for everyone. "
            "Check the spelling against your contact columns before scheduling."
        )
    for gap in coverage.gaps:
        warnings.append(
            f"{{{{ {gap.name} }}}} is empty or missing for {gap.lacking} of {gap.recipients} recipients: "
            f'they get nothing in its place. Give it a fallback, like {{{{ {gap.name}|default:"there" }}}}.'
        )
    return warnings


class CampaignComposeMixin(EditorPageMixin):
    form: "type[forms.ModelForm[Campaign]]" = CampaignAdminForm

    def get_urls(self):
        opts = self.model._meta
        name = f"{opts.app_label}_{opts.model_name}"
        return [
            path("<path:object_id>/preview/", self.admin_site.admin_view(self.preview_view), name=f"{name}_preview"),
        ] + super().get_urls()

    def save_related(self, request, form, formsets, change):
        super().save_related(request, form, formsets, change)
        for warning in campaign_warnings(form.instance):
            self.message_user(request, warning, messages.WARNING)

    def preview_view(self, request, object_id):
        campaign = self.get_object(request, unquote(object_id))
        if not self.has_view_or_change_permission(request, campaign):
            raise PermissionDenied
        contacts = personalization.subscribed_contacts(campaign=campaign)
        contact_id = request.POST.get("contact") or request.GET.get("contact")
        contact = contacts.filter(pk=contact_id).first() if str(contact_id or "").isdigit() else None
        if contact is None:
            contact = contacts.first()
        preview_url = reverse("admin:campaigns_campaign_preview", args=[campaign.pk])
        if contact is not None:
            preview_url += f"?contact={contact.pk}"

        form = TestSendForm(initial={"addresses": request.user.email, "contact": contact.pk if contact else None})
        if request.method == "POST":
            if not self.has_change_permission(request, campaign):
                raise PermissionDenied
            form = TestSendForm(request.POST)
            if form.is_valid():
                self._send_test(request, campaign, contact, form.cleaned_data["addresses"])
                return HttpResponseRedirect(preview_url)

        rendered, error = None, ""
        try:
            rendered = previews.preview(campaign=campaign, contact=contact)
        except personalize.PersonalizationError as exc:
            error = "; ".join(exc.messages)
        account = campaign.smtp_account
        test_send = preview_selectors.last_test_send(campaign=campaign)
        test_send_waiting = preview_selectors.awaiting_outcome(test_send=test_send, now=timezone.now())
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "original": campaign,
            "title": f"Preview of {campaign.name}",
            "subtitle": campaign.name,
            "rendered": rendered,
            "error": error,
            "contact": contact,
            "recipients": contacts[:PREVIEW_CONTACT_CHOICES],
            "sender": f"{account.from_name} <{account.from_email}>" if account else "",
            "form": form,
            "can_send_test": self.has_change_permission(request, campaign) and account is not None,
            "warnings": campaign_warnings(campaign),
            "preview_url": preview_url,
            "test_send": test_send,
            "test_send_waiting": test_send_waiting,
            "refresh_seconds": TEST_SEND_REFRESH_SECONDS if test_send_waiting else None,
        }
        response = TemplateResponse(request, "admin/campaigns/campaign/preview.html", context)
        # The iframe's srcdoc inherits this page's policy: let the email's remote images show.
        response["Content-Security-Policy"] = settings.CONTENT_SECURITY_POLICY_PREVIEW
        return response

    def _send_test(self, request, campaign, contact, addresses):
        # A worker talks to the server: a slow one would hold this web worker for up to SMTP_TIMEOUT a step.
        try:
            previews.request_test_send(
                campaign=campaign, addresses=addresses, contact=contact, enqueue=tasks.enqueue_test_send
            )
        except previews.TestSendError as exc:
            self.message_user(request, f"Test not sent: {exc}", messages.ERROR)
            return
        self.message_user(
            request,
            f"Sending the test to {', '.join(addresses)}… Its result shows here when it is done.",
            messages.INFO,
        )


@admin.action(description="Save selected as templates")
def save_as_template(modeladmin, request, queryset):
    made = [templates.template_from_campaign(campaign=campaign) for campaign in queryset.select_related("owner")]
    if len(made) == 1:
        url = reverse("admin:campaigns_emailtemplate_change", args=[made[0].pk])
        modeladmin.message_user(
            request, format_html('Saved as template <a href="{}">{}</a>.', url, made[0].name), messages.SUCCESS
        )
    elif made:
        modeladmin.message_user(request, f"{len(made)} templates saved.", messages.SUCCESS)


@admin.action(description="New campaign from selected template")
def new_campaign_from_template(modeladmin, request, queryset):
    made = [
        templates.campaign_from_template(template=template, owner=template.owner)
        for template in queryset.select_related("owner")
    ]
    if len(made) == 1:
        modeladmin.message_user(request, f"Draft campaign {made[0].name} created from the template.", messages.SUCCESS)
        return HttpResponseRedirect(reverse("admin:campaigns_campaign_change", args=[made[0].pk]))
    modeladmin.message_user(request, f"{len(made)} draft campaigns created.", messages.SUCCESS)
    return None


CAMPAIGN_COMPOSE_ACTIONS = [save_as_template]


class EmailTemplateComposeMixin(EditorPageMixin):
    form: "type[forms.ModelForm[EmailTemplate]]" = EmailTemplateAdminForm
    actions: Sequence[Callable[..., HttpResponseBase | None] | str] | None = [new_campaign_from_template]
