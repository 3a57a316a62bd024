"""Who a campaign would go to before it starts.

The same rule as ledger.materialise_statement, read-only: the owner's own subscribed
contacts on the campaign's own lists, each address once.
"""

from campaigns.models import Contact, ContactList


def recipients(*, campaign):
    """The contacts a start would materialise now (unordered)."""
    on_its_lists = ContactList.contacts.through.objects.filter(
        contactlist__campaigns=campaign, contactlist__owner_id=campaign.owner_id
    ).values("contact_id")
    return Contact.objects.filter(
        owner_id=campaign.owner_id, status=Contact.Status.SUBSCRIBED, id__in=on_its_lists
    )


def audience_count(*, campaign):
    """How many emails a start would create now: one per distinct address (its ON CONFLICT key)."""
    if campaign.pk is None:
        return 0
    return recipients(campaign=campaign).values("email").distinct().count()
