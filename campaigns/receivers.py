"""The campaigns app's answers to what the apps below it announce (connected in CampaignsConfig.ready)."""

from django.dispatch import receiver

from campaigns import ledger
from contacts.signals import contacts_suppressed


@receiver(contacts_suppressed, dispatch_uid="campaigns.cancel_emails_of_suppressed_contacts")
def cancel_emails_of_suppressed_contacts(*, contact_ids, now, **kwargs):
    """Their pending and deferred emails in every campaign are cancelled; rows a worker holds (queued)
    are left to it."""
    ledger.cancel_open(campaign_id=None, contact_ids=contact_ids, now=now)
