"""Admin export actions: querysets come from the owner-scoped admins, lists are scoped to the user."""

from django.contrib import admin

from campaigns.resources import CampaignResultResource
from contacts import exports


def _results_download(queryset, file_format):
    if not queryset.exists():
        return None
    headers, rows = CampaignResultResource().results(campaigns=queryset)
    name = f"results-{queryset.first().name}" if queryset.count() == 1 else "campaign-results"
    return exports.download(headers=headers, rows=rows, file_format=file_format, name=name)


@admin.action(description="Export per-recipient results as CSV", permissions=["view"])
def export_results_csv(modeladmin, request, queryset):
    return _results_download(queryset, "csv")


@admin.action(description="Export per-recipient results as Excel (XLSX)", permissions=["view"])
def export_results_xlsx(modeladmin, request, queryset):
    return _results_download(queryset, "xlsx")


CAMPAIGN_EXPORT_ACTIONS = [export_results_csv, export_results_xlsx]
