"""A campaign sent through an account with a bounce address: each message's envelope sender is its VERP address."""

from delivery import previews
from sending import verp


def test_each_campaign_message_goes_out_with_its_own_verp_envelope_sender(make_engine):
    engine = make_engine(bounce_address="bounces@mail.alice.example")
    campaign = engine.campaign(engine.contact_list("asha@example.in", "ravi@example.in", "meera@example.in"))
    engine.send_now(campaign)
    engine.tick()
    engine.handler.wait_for(lambda h: len(h.messages) == 3)
    emails = engine.emails(campaign)
    for received in engine.handler.messages:
        (recipient,) = received.rcpt_tos
        email = emails[recipient]
        assert received.mail_from == verp.address(bounce_address="bounces@mail.alice.example", email_id=email.pk)
        assert verp.parse(received.mail_from) == email.pk
        assert received.parsed()["From"].addresses[0].addr_spec == "news@alice.example"  # From unchanged
    assert set(engine.statuses(campaign).values()) == {"sent"}


def test_without_a_bounce_address_the_envelope_sender_is_the_from_address(engine):
    campaign = engine.campaign(engine.contact_list("asha@example.in"))
    engine.send_now(campaign)
    engine.tick()
    engine.handler.wait_for(lambda h: len(h.messages) == 1)
    assert engine.handler.messages[0].mail_from == "news@alice.example"


def test_a_test_send_keeps_the_from_address_as_envelope_sender(make_engine):
    engine = make_engine(bounce_address="bounces@mail.alice.example")
    campaign = engine.campaign(engine.contact_list("asha@example.in"))
    result = previews.send_test(campaign=campaign, addresses=["me@example.com"])
    assert result.sent == ["me@example.com"]
    assert engine.handler.messages[0].mail_from == "news@alice.example"
