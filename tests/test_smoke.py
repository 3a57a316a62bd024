from tests.factories import CampaignFactory, EmailFactory, EventFactory, LinkFactory


def test_factories_build_a_consistent_graph(db):
    event = EventFactory()
    link = LinkFactory(campaign=event.campaign)
    assert event.email.campaign.owner == event.email.contact.owner
    assert event.campaign.smtp_account.owner == event.campaign.owner
    assert link.campaign.owner == event.campaign.owner
    assert EmailFactory(campaign=CampaignFactory()).status == "pending"
