import zoneinfo

from django.core.management.base import CommandError
from django.utils import timezone

from campaigns.management.commands._campaign_command import CampaignCommand
from campaigns.selectors import audience
from campaigns.services import lifecycle
from delivery import tasks


class Command(CampaignCommand):
    help = 'Send a campaign now, or schedule it with --at "YYYY-MM-DD HH:MM" in its owner\'s time zone.'

    def add_arguments(self, parser):
        super().add_arguments(parser)
        parser.add_argument("--at", help='Local time in the owner\'s zone, e.g. "2026-12-01 10:00".')

    def handle(self, *args, campaign_id, at, **options):
        campaign = self.get_campaign(campaign_id)
        if not at:
            campaign = self.run_service(lifecycle.send_now, campaign, dispatch_now=tasks.dispatch_now)
            preparing = audience.describe_preparation(audience.preparation_progress(campaign=campaign))
            if preparing:
                # A large audience: the first chunks are written, the dispatcher's ticks write the rest.
                self.stdout.write(f"Sending while {preparing}; `manage.py dispatch` shows how far it is.")
            else:
                self.stdout.write(f"{campaign.emails.count()} recipient(s) queued for sending.")
            return
        try:
            when = lifecycle.parse_local_time(text=at, user=campaign.owner)
        except lifecycle.LifecycleError as exc:
            raise CommandError(str(exc)) from exc
        campaign = self.run_service(lifecycle.schedule, campaign, at=when)
        local = timezone.localtime(campaign.scheduled_at, timezone=zoneinfo.ZoneInfo(campaign.owner.timezone))
        self.stdout.write(
            f"Scheduled for {local:%Y-%m-%d %H:%M} {campaign.owner.timezone} "
            f"({campaign.scheduled_at:%Y-%m-%d %H:%M} UTC)."
        )
