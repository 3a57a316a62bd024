from campaigns.management.commands._campaign_command import CampaignCommand
from campaigns.services import lifecycle
from delivery import tasks


class Command(CampaignCommand):
    help = "Resume a campaign by id."

    def handle(self, *args, campaign_id, **options):
        self.run_service(lifecycle.resume, self.get_campaign(campaign_id), dispatch_now=tasks.dispatch_now)
