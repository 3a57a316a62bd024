"""The link check of a campaign (delivery.link_check): its page, its fragment for the "Review and send"
page, and its JSON. Thin: each calls one service or selector.

Routed in config.urls through admin.site.admin_view (staff login, CSRF on the POST). Another owner's
campaign answers 404.
"""

from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import HttpResponseRedirect, JsonResponse
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_http_methods

from campaigns.selectors import link_checks as link_check_selectors
from delivery import link_check, tasks

FRAGMENT = "admin/campaigns/campaign/_link_checks.html"
# The fragment reloads itself this often (milliseconds) while its run is under way.
POLL_MILLISECONDS = 1500


@require_http_methods(["GET", "POST"])
def link_checks_page(request, campaign_id):
    campaign = link_check_selectors.campaign_for(user=request.user, campaign_id=campaign_id)
    error = ""
    if request.method == "POST":
        error = _start(request, campaign)
        if not _from_script(request):
            if error:
                messages.error(request, error)
            return HttpResponseRedirect(_back(request, campaign))
        return _fragment(request, campaign, error=error)
    context = {
        **admin.site.each_context(request),
        **link_check_context(request, campaign, error=error),
        "title": "Link check",
        "subtitle": campaign.name,
        "opts": campaign._meta,
        "original": campaign,
    }
    return TemplateResponse(request, "admin/campaigns/campaign/link_checks.html", context)


@require_GET
def link_checks_status(request, campaign_id):
    """The last run: JSON with ?format=json, else the fragment (which the page polls)."""
    campaign = link_check_selectors.campaign_for(user=request.user, campaign_id=campaign_id)
    if request.GET.get("format") == "json":
        state = link_check_selectors.link_check_state(campaign=campaign, now=timezone.now())
        response = JsonResponse(link_check_selectors.as_json(state), json_dumps_params={"ensure_ascii": False})
        response["Cache-Control"] = "no-store"
        return response
    return _fragment(request, campaign)


def _start(request, campaign):
    if not request.user.has_perm("campaigns.change_campaign"):
        raise PermissionDenied
    try:
        link_check.request_link_check(campaign=campaign, user=request.user, enqueue=tasks.enqueue_link_check)
    except link_check.LinkCheckRefused as exc:
        return str(exc)
    return ""


def _fragment(request, campaign, *, error=""):
    response = TemplateResponse(request, FRAGMENT, link_check_context(request, campaign, error=error))
    response["Cache-Control"] = "no-store"
    return response


def link_check_context(request, campaign, *, error="", back=None):
    """What FRAGMENT needs, for a page that includes it (with its CSS and JS: see link_checks.html);
    `back` is where its form returns without the script (default: the link check's own page)."""
    return {
        "campaign": campaign,
        "link_check": link_check_selectors.link_check_state(campaign=campaign, now=timezone.now()),
        "link_check_error": error,
        "link_check_url": reverse("campaign_link_checks", args=[campaign.pk]),
        "link_check_status_url": reverse("campaign_link_checks_status", args=[campaign.pk]),
        "poll_milliseconds": POLL_MILLISECONDS,
        "can_start": request.user.has_perm("campaigns.change_campaign"),
        "back": back or reverse("campaign_link_checks", args=[campaign.pk]),
    }


def _from_script(request):
    return request.headers.get("X-Requested-With") == "fetch"


def _back(request, campaign):
    """Where a plain form's POST returns: its `next` when it is one of ours, else the check's page."""
    wanted = request.POST.get("next", "")
    if wanted and url_has_allowed_host_and_scheme(wanted, allowed_hosts={request.get_host()}):
        return wanted
    return reverse("campaign_link_checks", args=[campaign.pk])
