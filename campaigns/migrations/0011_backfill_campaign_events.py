"""Events for campaigns that changed status before CampaignEvent existed, from their timestamps,
so the dashboard's activity feed keeps their history after the upgrade."""

from django.db import migrations

REASON = "reconstructed from the campaign's timestamps at upgrade"


def events_of(campaign, CampaignEvent):
    started = campaign.started_at is not None
    if started:
        yield CampaignEvent(campaign_id=campaign.pk, at=campaign.started_at, from_status="scheduled",
                            to_status="sending", reason=REASON)
    if campaign.status in ("completed", "cancelled") and campaign.completed_at is not None:
        # Whether a cancelled campaign was paused first is not recorded anywhere.
        yield CampaignEvent(campaign_id=campaign.pk, at=campaign.completed_at,
                            from_status="sending" if started else "scheduled", to_status=campaign.status,
                            reason=REASON)
    if campaign.status == "paused":
        # As the feed showed it: the pause at the campaign's last change, with its reason.
        yield CampaignEvent(campaign_id=campaign.pk, at=campaign.updated_at,
                            from_status="sending" if started else "scheduled", to_status="paused",
                            reason=campaign.status_reason or REASON)


def backfill(apps, schema_editor):
    Campaign = apps.get_model("campaigns", "Campaign")
    CampaignEvent = apps.get_model("campaigns", "CampaignEvent")
    batch = []
    campaigns = Campaign.objects.exclude(status="draft").exclude(status="scheduled", started_at__isnull=True)
    for campaign in campaigns.only("pk", "status", "status_reason", "started_at", "completed_at", "updated_at") \
            .iterator(chunk_size=2000):
        batch.extend(events_of(campaign, CampaignEvent))
        if len(batch) >= 2000:
            CampaignEvent.objects.bulk_create(batch)
            batch = []
    CampaignEvent.objects.bulk_create(batch)


class Migration(migrations.Migration):
    dependencies = [("campaigns", "0010_campaign_events")]

    operations = [migrations.RunPython(backfill, migrations.RunPython.noop)]
