"""The MIME message of a campaign Email, parsed back with Python's email package."""

import email
import email.policy
import re
from email.utils import parseaddr, parsedate_to_datetime

import pytest
from django.conf import settings

from delivery import message
from tests.factories import CampaignFactory, ContactFactory, EmailFactory, MarketerFactory, SmtpAccountFactory
from tracking import tokens
from tracking.models import Link

pytestmark = pytest.mark.django_db

BODY = """<html><head><style>p.lead { color: #cc0000; }</style></head><body>
<p class="lead">Hallo {{ name|default:"there" }} aus {{ City }}!</p>
<p>Read <a href="https://shop.example.com/new?utm=mail&amp;x=1">our news</a>,
write to <a href="mailto:team@example.com">the team</a> or jump <a href="#top">up</a>.</p>
<p>Again: <a href="https://shop.example.com/new?utm=mail&amp;x=1">the news</a> and <a href="http://blog.example.com/">the blog</a>.</p>
</body></html>"""


@pytest.fixture
def owner():
    return MarketerFactory(username="zoe", organization="Zoë & Co", postal_address="Hauptstraße 1\n10115 Berlin")


@pytest.fixture
def account(owner):
    return SmtpAccountFactory(
        owner=owner, from_name="Zoë Ünïcode", from_email="news@zoe.example", reply_to="replies@zoe.example"
    )


@pytest.fixture
def campaign(owner, account):
    return CampaignFactory(owner=owner, smtp_account=account, subject="Grüße für {{ name }} ✓", body_html=BODY)


def make_email(campaign, **contact_fields):
    fields = {"email": "jose@example.org", "name": "José Müller", "attributes": {"City": "Köln"}}
    fields.update(contact_fields)
    contact = ContactFactory(owner=campaign.owner, **fields)
    return EmailFactory(campaign=campaign, contact=contact, message_id=message.new_message_id())


def build(email_row):
    envelope_from, raw = message.build(
        email=email_row, campaign=email_row.campaign, account=email_row.campaign.smtp_account
    )
    return envelope_from, raw, email.message_from_bytes(raw, policy=email.policy.default)


def parts(parsed):
    # Parsed from the wire, line ends are CRLF; compare text with plain newlines.
    text = parsed.get_body(preferencelist=("plain",)).get_content().replace("\r\n", "\n")
    html = parsed.get_body(preferencelist=("html",)).get_content().replace("\r\n", "\n")
    return text, html


def test_structure_and_every_header_for_non_ascii_name_and_subject(campaign):
    email_row = make_email(campaign)
    envelope_from, raw, parsed = build(email_row)

    assert envelope_from == "news@zoe.example"
    assert raw.isascii(), "every non-ASCII header is encoded, bodies are transfer-encoded"
    assert parsed.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in parsed.iter_parts()] == ["text/plain", "text/html"]

    assert str(parsed["Subject"]) == "Grüße für José Müller ✓"
    assert re.search(rb"^Subject: =\?utf-8\?", raw, re.M | re.I)
    assert all(len(line) <= 998 for line in raw.split(b"\r\n"))
    assert b"\n" not in raw.replace(b"\r\n", b"")
    assert parseaddr(str(parsed["From"])) == ("Zoë Ünïcode", "news@zoe.example")
    assert parseaddr(str(parsed["To"])) == ("José Müller", "jose@example.org")
    assert str(parsed["Reply-To"]) == "replies@zoe.example"
    assert parsedate_to_datetime(str(parsed["Date"])).tzinfo is not None
    assert parsed["Message-ID"] == email_row.message_id
    assert parsed["Message-ID"].endswith(f"@{settings.MESSAGE_ID_DOMAIN}>")

    # No bounce address and no UNSUBSCRIBE_MAILTO: no mailto that nobody would read.
    https_url = str(parsed["List-Unsubscribe"]).strip("<>")
    assert https_url == settings.SITE_URL + f"/t/u/{tokens.unsubscribe_token(email_row.pk)}/"
    assert str(parsed["List-Unsubscribe-Post"]) == "List-Unsubscribe=One-Click"
    # No token or tracking URL carries the address.
    assert b"jose%40example.org" not in raw and "jose@example.org" not in https_url


def list_unsubscribe_urls(built):
    _, _, parsed = built
    return [u.strip().strip("<>") for u in str(parsed["List-Unsubscribe"]).split(",")]


def test_the_unsubscribe_mailto_goes_to_the_bounce_address_whose_mailbox_is_read(campaign, account):
    account.bounce_address = "bounces@mail.zoe.example"
    account.save()
    email_row = make_email(campaign)
    token = tokens.unsubscribe_token(email_row.pk)

    https_url, mailto = list_unsubscribe_urls(build(email_row))

    assert https_url == settings.SITE_URL + f"/t/u/{token}/"
    assert mailto == f"mailto:bounces@mail.zoe.example?subject=unsubscribe%20{token}"


def test_an_operator_routed_unsubscribe_address_serves_accounts_without_a_bounce_address(campaign, settings):
    settings.UNSUBSCRIBE_MAILTO = "unsubscribe@lists.example.org"
    email_row = make_email(campaign)

    https_url, mailto = list_unsubscribe_urls(build(email_row))

    assert (
        mailto == f"mailto:unsubscribe@lists.example.org?subject=unsubscribe%20{tokens.unsubscribe_token(email_row.pk)}"
    )


@pytest.mark.parametrize(
    ("subject", "name"),
    [
        ("News for {{ name }}", "Jo Smith"),  # short ASCII: written as it is
        ("A long plain subject " * 6 + "for {{ name }}", "Jo Smith"),  # ASCII over a line: folded
        ("Short", 'Smith, Jo "JJ"'),  # a name with specials: quoted
    ],
)
def test_ascii_subjects_and_names_come_back_exactly_with_no_line_over_78(campaign, subject, name):
    campaign.subject = subject
    campaign.save()
    email_row = make_email(campaign, name=name, email="jo@example.org")
    _, raw, parsed = build(email_row)
    assert str(parsed["Subject"]) == subject.replace("{{ name }}", name)
    assert parseaddr(str(parsed["To"])) == (name, "jo@example.org")
    # Every physical header line within 78 columns, but List-Unsubscribe's: it is folded only
    # between its URLs, which may be longer than a line.
    long_lines, name = [], b""
    for line in raw.split(b"\r\n\r\n", 1)[0].split(b"\r\n"):
        name = name if line[:1] in (b" ", b"\t") else line.split(b":", 1)[0]
        if len(line) > 78 and name != b"List-Unsubscribe":
            long_lines.append(line)
    assert long_lines == []


def test_header_breaks_in_a_contact_name_never_reach_the_headers(campaign):
    email_row = make_email(campaign, name="Eve\r\nBcc: victim@example.org")
    _, raw, parsed = build(email_row)
    assert "Bcc" not in parsed
    assert parseaddr(str(parsed["To"]))[1] == "jose@example.org"
    assert str(parsed["Subject"]).startswith("Grüße für Eve Bcc")


def test_footer_with_unsubscribe_link_organization_and_postal_address_in_both_parts(campaign):
    email_row = make_email(campaign)
    _, _, parsed = build(email_row)
    text, html = parts(parsed)
    unsubscribe = message.unsubscribe_url(email_row.pk)
    for part in (text, html):
        assert "Zoë &amp; Co" in part or "Zoë & Co" in part
        assert "Hauptstraße 1" in part and "10115 Berlin" in part
    assert f'href="{unsubscribe}"' in html  # not rewritten for tracking
    assert f"Unsubscribe ({unsubscribe})" in text or f"Unsubscribe: {unsubscribe}" in text


def test_the_text_part_is_derived_from_the_html_with_links_as_text_and_no_markup(campaign):
    _, _, parsed = build(make_email(campaign))
    text, _ = parts(parsed)
    assert "Hallo José Müller aus Köln!" in text
    assert "our news (https://shop.example.com/new?utm=mail&x=1)" in text
    assert "the team (team@example.com)" in text
    assert "<" not in text and "&amp;" not in text and "color" not in text


def test_css_is_inlined_into_the_html_part(campaign):
    _, _, parsed = build(make_email(campaign))
    _, html = parts(parsed)
    assert re.search(r'<p class="lead" style="color: #cc0000;?">', html)


def test_links_are_tracked_but_not_mailto_anchors_or_unsubscribe(campaign):
    email_row = make_email(campaign)
    _, _, parsed = build(email_row)
    _, html = parts(parsed)
    assert "https://shop.example.com" not in html and "http://blog.example.com" not in html
    assert 'href="mailto:team@example.com"' in html and 'href="#top"' in html
    links = {link.url: link for link in Link.objects.filter(campaign=campaign)}
    assert set(links) == {"https://shop.example.com/new?utm=mail&x=1", "http://blog.example.com/"}
    for link in links.values():
        click = message.click_url(email_row.pk, link.pk)
        assert html.count(f'href="{click}"') == (2 if "shop" in link.url else 1)
    assert f'src="{message.open_pixel_url(email_row.pk)}"' in html


def test_link_rows_are_stored_once_per_campaign_and_url_and_looked_up_once_per_batch(
    campaign, django_assert_max_num_queries
):
    first, second = make_email(campaign), make_email(campaign, email="ana@example.org", name="Ana")
    build(first)
    with django_assert_max_num_queries(0):
        build(second)
    assert Link.objects.filter(campaign=campaign).count() == 2
    other = CampaignFactory(owner=campaign.owner, smtp_account=campaign.smtp_account, body_html=BODY)
    build(make_email(other, email="x@example.org"))
    assert Link.objects.count() == 4


def test_tracking_off_leaves_links_and_adds_no_pixel(campaign):
    campaign.track_clicks = campaign.track_opens = False
    campaign.save()
    _, _, parsed = build(make_email(campaign))
    _, html = parts(parsed)
    assert 'href="https://shop.example.com/new?utm=mail&amp;x=1"' in html
    assert "/t/o/" not in html and not Link.objects.exists()


def test_a_body_placing_the_unsubscribe_link_itself_gets_no_footer(campaign):
    campaign.body_html = '<p>Hi {{ name }}</p><p><a href="{{ unsubscribe_url }}">Leave this list</a></p>'
    campaign.body_text = "Hi {{ name }}\nLeave: {{ unsubscribe_url }}"
    campaign.save()
    email_row = make_email(campaign)
    _, _, parsed = build(email_row)
    text, html = parts(parsed)
    unsubscribe = message.unsubscribe_url(email_row.pk)
    assert "You receive this email from" not in html and "You receive this email from" not in text
    assert f'href="{unsubscribe}"' in html
    assert text.strip() == f"Hi José Müller\nLeave: {unsubscribe}"


def test_a_given_text_part_is_used_with_the_footer_added(campaign):
    campaign.body_text = "Hallo {{ name }} <from {{ City }}>"
    campaign.save()
    email_row = make_email(campaign)
    text, _ = parts(build(email_row)[2])
    assert text.startswith("Hallo José Müller <from Köln>")
    assert f"Unsubscribe: {message.unsubscribe_url(email_row.pk)}" in text


def test_contact_values_are_escaped_in_html_and_left_alone_in_text(campaign):
    campaign.body_text = "City: {{ City }}"
    campaign.save()
    text, html = parts(build(make_email(campaign, attributes={"City": "<script>alert(1)</script>"}))[2])
    assert "<script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "City: <script>alert(1)</script>" in text


def test_the_batch_sender_delivers_this_message_and_a_retry_reuses_the_stored_message_id(make_engine, marketer):
    from tests.smtp_server import RecordingHandler

    engine = make_engine(RecordingHandler(rcpt_replies={"later@example.org": (451, "4.7.0 Try again later")}))
    campaign = engine.campaign(
        engine.contact_list("now@example.org", "later@example.org"), subject="Grüße {{ name }}", body_html=BODY
    )
    engine.send_now(campaign)
    engine.tick()
    delivered = engine.handler.messages[0].parsed()
    stored = engine.email(campaign, "now@example.org")
    assert delivered["Message-ID"] == stored.message_id
    assert str(delivered["List-Unsubscribe-Post"]) == "List-Unsubscribe=One-Click"
    assert tokens.unsubscribe_token(stored.pk) in str(delivered["List-Unsubscribe"])

    deferred = engine.email(campaign, "later@example.org")
    first_id = deferred.message_id
    assert first_id
    engine.handler.rcpt_replies.clear()
    engine.clock.advance(seconds=31)
    engine.tick()
    retried = [m for m in engine.handler.messages if m.rcpt_tos == ["later@example.org"]][0].parsed()
    assert retried["Message-ID"] == first_id == engine.email(campaign, "later@example.org").message_id


@pytest.mark.parametrize("name", ["tracking:unsubscribe", "tracking:open", "tracking:click"])
@pytest.mark.parametrize("prefix", ["/", "/mail/"])
def test_tracking_urls_are_what_reverse_writes_for_every_site_url_and_script_prefix(settings, name, prefix):
    from django.urls import reverse, set_script_prefix

    for site_url in ("https://mail.example.com", "https://other.example.net:8443"):
        settings.SITE_URL = site_url
        set_script_prefix(prefix)
        try:
            for token in (tokens.unsubscribe_token(123), tokens.click_token(5, 77), "preview"):
                assert message.tracking_url(name, token) == site_url + reverse(name, args=[token])
            # A token that would need quoting is not assembled by hand.
            assert message.tracking_url(name, "a b+ç") == site_url + reverse(name, args=["a b+ç"])
        finally:
            set_script_prefix("/")
