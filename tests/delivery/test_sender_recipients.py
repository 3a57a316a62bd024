"""One recipient never stalls the others: internationalised addresses (RFC 6531/6532) sent with
SMTPUTF8 where the server offers it and failed, each on its own, where it does not; and an
unexpected error on one message fails that row after a bounded number of attempts while the rest
of the batch goes on."""

import pytest
from django.conf import settings

from campaigns.models import Campaign, Email
from contacts.models import Contact
from delivery import message, previews
from reporting.selectors import analytics, dashboard
from sending.addresses import transport_address
from tests.factories import ContactFactory, ContactListFactory
from tests.smtp_server import RecordingHandler

S = Email.Status
INTERNATIONAL = ["zoë.müller@example.de", "李雷@example.cn"]
ASCII = ["asha@example.org", "ravi@example.org", "mira@bücher.example"]


def _utf8_engine(make_engine, *, smtputf8):
    return make_engine(RecordingHandler(), server_kwargs={"enable_SMTPUTF8": smtputf8})


def test_internationalised_addresses_go_out_with_smtputf8_when_the_server_offers_it(make_engine):
    engine = _utf8_engine(make_engine, smtputf8=True)
    campaign = engine.campaign(engine.contact_list(*INTERNATIONAL, *ASCII))
    engine.send_now(campaign)

    engine.tick()

    assert set(engine.statuses(campaign).values()) == {S.SENT}
    delivered = engine.handler.delivered_to()
    # An ASCII local part at an internationalised domain goes out in its IDNA form, without SMTPUTF8.
    assert sorted(delivered) == sorted([*INTERNATIONAL, *ASCII[:2], "mira@xn--bcher-kva.example"])
    by_recipient = {m.rcpt_tos[0]: m for m in engine.handler.messages}
    for address in INTERNATIONAL:
        parsed = by_recipient[address].parsed()
        assert address in str(parsed["To"])  # a UTF-8 header (RFC 6532), not an encoded word
        assert parsed["Subject"] == "Hello " + Contact.objects.get(email=address).name  # personalised as usual
    assert by_recipient[ASCII[0]].content.isascii()  # nothing changes for everyone else
    campaign.refresh_from_db()
    assert campaign.status == Campaign.Status.COMPLETED


def test_without_smtputf8_each_internationalised_address_fails_on_its_own_and_the_rest_is_sent(make_engine):
    engine = _utf8_engine(make_engine, smtputf8=False)
    campaign = engine.campaign(engine.contact_list(INTERNATIONAL[0], *ASCII[:2], INTERNATIONAL[1]))
    engine.send_now(campaign)

    engine.tick()

    assert sorted(engine.handler.delivered_to()) == sorted(ASCII[:2])
    for address in INTERNATIONAL:
        email = engine.email(campaign, address)
        assert (email.status, email.failure_class, email.attempts) == (S.FAILED, Email.FailureClass.REJECTED, 1)
        assert "does not support SMTPUTF8" in email.smtp_response
        # The address is fine; this server cannot carry it: the contact is not bounced.
        assert Contact.objects.get(owner=engine.owner, email=address).status == Contact.Status.SUBSCRIBED
    campaign.refresh_from_db()
    assert campaign.status == Campaign.Status.COMPLETED


def test_an_unexpected_error_on_one_message_fails_that_row_after_bounded_attempts_and_the_batch_goes_on(
    engine, monkeypatch, superuser
):
    """A bug met by one recipient (here: building its message raises) used to crash the batch, whose
    rows then came back after every lease, forever, attempts 0, the campaign 'sending' for good."""
    poison = "poison@example.org"
    others = ["a@example.org", "b@example.org", "c@example.org"]
    build = message.build

    def build_failing_for_poison(*, email, **kwargs):
        if email.to_email == poison:
            raise ValueError("cannot render this one")
        return build(email=email, **kwargs)

    monkeypatch.setattr(message, "build", build_failing_for_poison)
    campaign = engine.campaign(engine.contact_list(others[0], poison, *others[1:]))
    engine.send_now(campaign)

    engine.tick()

    assert sorted(engine.handler.delivered_to()) == others
    row = engine.email(campaign, poison)
    assert (row.status, row.attempts) == (S.DEFERRED, 1)
    assert row.smtp_response == "error while sending: ValueError: cannot render this one"
    for attempt in range(2, settings.EMAIL_ERROR_ATTEMPTS + 1):
        engine.clock.advance(seconds=3600)
        engine.tick()
        row.refresh_from_db()
        assert row.attempts == attempt
    assert (row.status, row.failure_class) == (S.FAILED, Email.FailureClass.ERROR)
    assert engine.handler.delivered_to().count(poison) == 0 and len(engine.handler.delivered_to()) == 3
    campaign.refresh_from_db()
    assert campaign.status == Campaign.Status.COMPLETED
    # Shown where the marketer looks: the campaign's analytics counts it, with the error's text.
    assert analytics.analytics(campaign=campaign)["breakdown"]["failed_error"] == 1
    # ... the owner's activity log, with the error's text, and the superuser's health panel.
    owners_view = dashboard.dashboard(user=engine.owner, now=engine.clock())
    assert any(
        item["kind"] == "failed"
        and item["text"].startswith(
            f"{poison} failed with an error: error while sending: ValueError: cannot render this one"
        )
        for item in owners_view["activity"]
    )
    assert "system" not in owners_view
    assert dashboard.dashboard(user=superuser, now=engine.clock())["system"]["send_errors"] == 1


def test_a_message_whose_personalised_body_is_too_large_fails_at_once_and_the_batch_goes_on(engine, settings):
    """A contact's long value printed many times would build a body of any size in the shared
    worker: that recipient's message fails, unsent, with the reason, and the others go out."""
    settings.RENDERED_BODY_MAX_CHARS = 50_000
    small = ["a@example.org", "b@example.org"]
    huge = ContactFactory(owner=engine.owner, email="huge@example.org", attributes={"Notes": "x" * 20_000})
    contacts = [ContactFactory(owner=engine.owner, email=a, attributes={"Notes": "short"}) for a in small]
    campaign = engine.campaign(
        ContactListFactory(owner=engine.owner, contacts=[contacts[0], huge, contacts[1]]),
        body_html="<p>{{ Notes }}</p>" * 3,
    )
    engine.send_now(campaign)

    engine.tick()

    assert sorted(engine.handler.delivered_to()) == small
    row = engine.email(campaign, huge.email)
    assert (row.status, row.failure_class, row.attempts) == (S.FAILED, Email.FailureClass.ERROR, 1)
    assert row.smtp_response == (
        "not built: The HTML body would be longer than 50,000 characters for this recipient: "
        "shorten the template or this contact's values."
    )
    campaign.refresh_from_db()
    assert campaign.status == Campaign.Status.COMPLETED


def test_a_personalised_subject_past_its_limit_fails_that_message(engine, settings):
    settings.RENDERED_SUBJECT_MAX_CHARS = 100
    long_name = ContactFactory(owner=engine.owner, email="long@example.org", name="N" * 101)
    campaign = engine.campaign(ContactListFactory(owner=engine.owner, contacts=[long_name]), subject="{{ name }}")
    engine.send_now(campaign)

    engine.tick()

    assert engine.handler.delivered_to() == []
    row = engine.email(campaign, long_name.email)
    assert (row.status, row.failure_class) == (S.FAILED, Email.FailureClass.ERROR)
    assert row.smtp_response.startswith("not built: The subject would be longer than 100 characters")


def test_a_test_send_accepts_every_address_import_accepts(make_engine):
    engine = _utf8_engine(make_engine, smtputf8=True)
    campaign = engine.campaign(engine.contact_list("reader@example.org"))

    result = previews.send_test(campaign=campaign, addresses=INTERNATIONAL)

    assert sorted(result.sent) == sorted(INTERNATIONAL) and result.refused == []
    engine.handler.wait_for(lambda h: len(h.messages) == 2)
    assert sorted(engine.handler.delivered_to()) == sorted(INTERNATIONAL)


def test_a_test_send_to_an_internationalised_address_says_when_the_server_cannot_carry_it(make_engine):
    engine = _utf8_engine(make_engine, smtputf8=False)
    campaign = engine.campaign(engine.contact_list("reader@example.org"))

    result = previews.send_test(campaign=campaign, addresses=[INTERNATIONAL[0], "ok@example.org"])

    assert result.sent == ["ok@example.org"]
    assert [(a, "SMTPUTF8" in why) for a, why in result.refused] == [(INTERNATIONAL[0], True)]


@pytest.mark.parametrize(
    "address, wire",
    [
        ("a@example.org", "a@example.org"),
        ("mira@bücher.example", "mira@xn--bcher-kva.example"),
        ("zoë@bücher.example", "zoë@xn--bcher-kva.example"),
        ("李雷@example.cn", "李雷@example.cn"),
    ],
)
def test_the_wire_form_of_an_address(address, wire):
    assert transport_address(address) == wire
