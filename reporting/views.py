"""The dashboard's and the analytics page's views: thin, each calls one selector.

Routed in config.urls through admin.site.admin_view (staff login, the admin's
context). The JSON answers are scoped to the logged-in user; another owner's
campaign answers 404.
"""

from django.contrib import admin
from django.http import JsonResponse
from django.template.response import TemplateResponse

from campaigns.selectors import audience
from reporting.selectors import analytics as analytics_selectors
from reporting.selectors import dashboard as dashboard_selectors


def _json(data):
    response = JsonResponse(data, json_dumps_params={"ensure_ascii": False})
    response["Cache-Control"] = "no-store"
    return response


def _page_number(request):
    try:
        return max(1, int(request.GET.get("page", "1")))
    except ValueError:
        return 1


def dashboard_data(request):
    return _json(dashboard_selectors.dashboard(user=request.user))


def campaign_analytics(request, campaign_id):
    campaign = analytics_selectors.campaign_for(user=request.user, campaign_id=campaign_id)
    context = {
        **admin.site.each_context(request),
        "title": f"Analytics: {campaign.name}",
        "campaign": campaign,
        "preparing": audience.describe_preparation(audience.preparation_progress(campaign=campaign)),
        "blocked": analytics_selectors.sending_block(campaign=campaign),
        "opts": campaign._meta,
        "original": campaign,
    }
    return TemplateResponse(request, "admin/campaigns/campaign/analytics.html", context)


def campaign_analytics_data(request, campaign_id):
    campaign = analytics_selectors.campaign_for(user=request.user, campaign_id=campaign_id)
    return _json(
        analytics_selectors.analytics(
            campaign=campaign,
            page=_page_number(request),
            search=request.GET.get("q", "")[:200],
        )
    )
