from campaigns.management.commands._campaign_command import CampaignCommand
from campaigns.services import lifecycle


class Command(CampaignCommand):
    help = "Cancel a campaign by id."

    def handle(self, *args, campaign_id, **options):
        self.run_service(lifecycle.cancel, self.get_campaign(campaign_id))
