from campaigns.management.commands._campaign_command import CampaignCommand
from campaigns.services import lifecycle


class Command(CampaignCommand):
    help = "Pause a campaign by id."

    def handle(self, *args, campaign_id, **options):
        self.run_service(lifecycle.pause, self.get_campaign(campaign_id))
