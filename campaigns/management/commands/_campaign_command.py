from django.core.management.base import BaseCommand, CommandError

from campaigns.models import Campaign
from campaigns.services import lifecycle


class CampaignCommand(BaseCommand):
    """A staff command acting on one campaign by id through a lifecycle service."""

    def add_arguments(self, parser):
        parser.add_argument("campaign_id", type=int)

    def get_campaign(self, campaign_id):
        campaign = Campaign.objects.select_related("owner", "smtp_account").filter(pk=campaign_id).first()
        if campaign is None:
            raise CommandError(f"No campaign with id {campaign_id}.")
        return campaign

    def run_service(self, service, campaign, **kwargs):
        # A shell has no user: the system acted, and the event names the command.
        command = self.__module__.rsplit(".", 1)[-1]
        try:
            campaign = service(campaign=campaign, acting_user=None, reason=f"manage.py {command}", **kwargs)
        except lifecycle.LifecycleError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(self.style.SUCCESS(f"Campaign {campaign.pk} ({campaign.name}) is now {campaign.status}."))
        return campaign
