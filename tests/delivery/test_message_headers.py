"""The headers of a built message (List-Id, Feedback-ID, the marketer's own, the Message-ID's domain),
text-only messages and where the open pixel goes, parsed back with the email package's strict policy."""

import email
import email.policy

import pytest
from django.conf import settings

from campaigns.services import lifecycle
from delivery import message
from sending.addresses import sender_domain
from tests.factories import (
    CampaignFactory,
    ContactFactory,
    ContactListFactory,
    EmailFactory,
    MarketerFactory,
    SegmentFactory,
    SmtpAccountFactory,
)
from tracking.models import Link

pytestmark = pytest.mark.django_db

HTML = '<p>Hello {{ name }}, the <a href="https://garden.example/roses">roses</a> are out.</p>'
TEXT = "Hello {{ name }},\n\nThe roses are out: https://garden.example/roses\n\nMaya"


@pytest.fixture
def owner():
    return MarketerFactory(username="zoe", organization="Zoë & Co", postal_address="Hauptstraße 1\n10115 Berlin")


@pytest.fixture
def account(owner):
    return SmtpAccountFactory(
        owner=owner,
        from_name="Zoë",
        from_email="news@zoe.example",
        reply_to="replies@zoe.example",
        custom_headers="X-Team: garden\r\nX-Code: from-the-account",
    )


@pytest.fixture
def friends(owner):
    return ContactListFactory(owner=owner, name="Friends of the garden")


def campaign_to(account, *lists, **fields):
    values = {"subject": "Roses", "body_html": HTML, **fields}
    return CampaignFactory(owner=account.owner, smtp_account=account, lists=list(lists), **values)


def built(campaign, address="jo@example.org"):
    contact = ContactFactory(owner=campaign.owner, email=address, name="Jo")
    row = EmailFactory(campaign=campaign, contact=contact, message_id=message.new_message_id(campaign.smtp_account))
    _, raw = message.build(email=row, campaign=campaign, account=campaign.smtp_account)
    return row, raw, email.message_from_bytes(raw, policy=email.policy.strict)


def test_every_header_of_a_campaign_message_in_order(owner, account, friends):
    campaign = campaign_to(account, friends, custom_headers="x-code: spring\r\nX-Extra: yes")

    row, raw, parsed = built(campaign)

    assert parsed.keys() == [
        "From",
        "To",
        "Reply-To",
        "Subject",
        "Date",
        "Message-ID",
        "List-Unsubscribe",
        "List-Unsubscribe-Post",
        "List-Id",
        "Feedback-ID",
        "X-Team",
        "x-code",
        "X-Extra",
        "MIME-Version",
        "Content-Type",
    ]
    assert parsed.defects == [] and all(not part.defects for part in parsed.walk())
    assert parsed["List-Id"] == f"Friends of the garden <list-{friends.pk}.{owner.pk}.zoe.example>"
    assert parsed["Feedback-ID"] == f"{campaign.pk}:{account.pk}:{owner.pk}:campaigns"
    assert parsed["Message-ID"] == row.message_id and row.message_id.endswith("@zoe.example>")
    assert (parsed["X-Team"], parsed.get_all("X-Code"), parsed["X-Extra"]) == ("garden", ["spring"], "yes")
    assert raw.isascii()


def test_the_list_id_is_one_per_list_whatever_the_campaign(account, friends):
    others = ContactListFactory(owner=account.owner, name="Others")
    first = built(campaign_to(account, friends))[2]["List-Id"]
    again = built(campaign_to(account, friends, subject="Tulips"), "ana@example.org")[2]["List-Id"]
    other = built(campaign_to(account, others), "max@example.org")[2]["List-Id"]

    assert first == again
    assert other == f"Others <list-{others.pk}.{account.owner.pk}.zoe.example>"


def test_a_campaign_to_segments_alone_gets_its_owners_list_id(owner, account):
    campaign = campaign_to(account)
    campaign.segments.set([SegmentFactory(owner=owner)])

    parsed = built(campaign)[2]

    assert parsed["List-Id"] == f"Zoë & Co <contacts.{owner.pk}.zoe.example>"  # the organization, RFC 2047-encoded
    assert built(campaign_to(account), "ana@example.org")[2]["List-Id"] == parsed["List-Id"]


def test_a_resend_names_its_sources_list(account, friends):
    source = campaign_to(account, friends, status="completed")
    resend = lifecycle.resend_to_non_openers(campaign=source)

    assert built(resend)[2]["List-Id"] == built(source, "ana@example.org")[2]["List-Id"]


def test_a_long_list_name_is_folded_before_the_identifier(owner, account):
    long_name = ContactListFactory(owner=owner, name="Friends, neighbours and volunteers of the garden " * 2)

    _, raw, parsed = built(campaign_to(account, long_name))

    head = raw.split(b"\r\n\r\n", 1)[0].decode()
    assert all(len(line) <= 78 for line in head.split("\r\n") if not line.startswith(("List-Unsubscribe", " <")))
    assert parsed["List-Id"] == f'"{long_name.name.strip()}" <list-{long_name.pk}.{owner.pk}.zoe.example>'


def test_a_non_ascii_value_of_an_own_header_is_encoded_and_comes_back(account, friends):
    campaign = campaign_to(account, friends, custom_headers="X-Greeting: Grüße aus Köln")

    _, raw, parsed = built(campaign)

    assert raw.isascii() and parsed["X-Greeting"] == "Grüße aus Köln"


@pytest.mark.parametrize(
    ("from_email", "domain"),
    [
        ("news@Zoe.Example", "zoe.example"),
        ("news@bücher.example", "xn--bcher-kva.example"),
        ("news@[192.0.2.7]", settings.MESSAGE_ID_DOMAIN),
    ],
)
def test_message_ids_and_list_ids_are_made_in_the_from_addresses_domain(from_email, domain):
    assert sender_domain(from_email) == domain
    assert message.new_message_id(SmtpAccountFactory(from_email=from_email)).endswith(f"@{domain}>")


def test_a_test_send_carries_the_campaigns_headers(account, friends):
    campaign = campaign_to(account, friends)

    _, raw = message.build_test(
        campaign=campaign, account=account, to_email="me@zoe.example", name="Jo", email="jo@example.org", attributes={}
    )
    parsed = email.message_from_bytes(raw, policy=email.policy.strict)

    assert parsed["List-Id"] == f"Friends of the garden <list-{friends.pk}.{account.owner.pk}.zoe.example>"
    assert parsed["Feedback-ID"] == f"{campaign.pk}:{account.pk}:{account.owner.pk}:campaigns"
    assert parsed["Message-ID"].endswith("@zoe.example>") and parsed["X-Team"] == "garden"


# --- text-only campaigns ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "fields",
    [
        {"body_html": "", "body_text": TEXT},  # no HTML body written
        {"body_html": HTML, "body_text": TEXT, "text_only": True},  # the choice, over an HTML body
    ],
)
def test_a_text_only_campaign_is_one_plain_part_with_its_footer_and_nothing_tracked(account, friends, fields):
    campaign = campaign_to(account, friends, **fields)

    row, raw, parsed = built(campaign)

    assert not parsed.is_multipart()
    assert (parsed.get_content_type(), parsed.get_content_charset()) == ("text/plain", "utf-8")
    assert parsed["Content-Transfer-Encoding"] == "quoted-printable"
    assert parsed.keys()[-3:] == ["MIME-Version", "Content-Type", "Content-Transfer-Encoding"]
    text = parsed.get_content().replace("\r\n", "\n")
    assert text.startswith("Hello Jo,\n\nThe roses are out: https://garden.example/roses\n\nMaya\n\n--\n")
    assert "You receive this email from Zoë & Co." in text
    assert f"Unsubscribe: {message.unsubscribe_url(row.pk)}" in text
    assert b"<html" not in raw and b"/t/o/" not in raw and b"/t/c/" not in raw
    assert not Link.objects.filter(campaign=campaign).exists()
    assert parsed["List-Id"] and parsed["Feedback-ID"] and parsed["List-Unsubscribe"]


def test_plain_text_only_derives_the_text_from_an_html_body_alone(account, friends):
    campaign = campaign_to(account, friends, body_text="", text_only=True)

    parsed = built(campaign)[2]

    assert parsed.get_content_type() == "text/plain"
    assert parsed.get_content().startswith("Hello Jo, the roses (https://garden.example/roses) are out.")


# --- the open pixel -----------------------------------------------------------------------------------


def test_the_open_pixel_goes_after_the_body_and_before_the_footer(account, friends):
    row, _, parsed = built(campaign_to(account, friends))

    html = parsed.get_body(preferencelist=("html",)).get_content()
    pixel = html.index(f'<img src="{message.open_pixel_url(row.pk)}"')
    assert html.index("are out.</p>") < pixel < html.index("You receive this email from") < html.index("</body>")


def test_without_a_footer_the_pixel_ends_the_body(account, friends):
    body = '<p>Hi</p><p><a href="{{ unsubscribe_url }}">Leave</a></p>'
    row, _, parsed = built(campaign_to(account, friends, body_html=body, body_text="Hi {{ unsubscribe_url }}"))

    html = parsed.get_body(preferencelist=("html",)).get_content()
    assert "You receive this email from" not in html
    assert html.index("Leave</a></p>") < html.index(message.open_pixel_url(row.pk)) < html.index("</body>")


# --- through the engine -------------------------------------------------------------------------------


def test_a_sent_message_carries_list_id_feedback_id_and_a_message_id_in_the_from_domain(make_engine):
    engine = make_engine(custom_headers="X-Team: news")
    readers = engine.contact_list("ana@example.org", name="Readers")
    campaign = engine.campaign(readers, subject="Hello", body_html=HTML, custom_headers="X-Code: 7")
    engine.send_now(campaign)

    engine.tick()

    (received,) = engine.handler.messages
    parsed = email.message_from_bytes(received.content, policy=email.policy.strict)
    stored = engine.email(campaign, "ana@example.org")
    assert parsed["List-Id"] == f"Readers <list-{readers.pk}.{engine.owner.pk}.alice.example>"
    assert parsed["Feedback-ID"] == f"{campaign.pk}:{engine.account.pk}:{engine.owner.pk}:campaigns"
    assert parsed["Message-ID"] == stored.message_id and stored.message_id.endswith("@alice.example>")
    assert (parsed["X-Team"], parsed["X-Code"]) == ("news", "7")
