"""A message of an account with a verified tracking domain carries every tracking URL on that domain;
an unverified one falls back to SITE_URL. The domain comes with the batch's campaign load."""

import email
import email.policy
import re
from urllib.parse import urlsplit

import pytest
from django.conf import settings
from django.utils import timezone

from delivery import campaign_loader, message
from tests.factories import CampaignFactory, ContactFactory, EmailFactory, MarketerFactory, SmtpAccountFactory

pytestmark = pytest.mark.django_db

DOMAIN = "links.zoe.example"
BODY = (
    '<html><body><p>Read <a href="https://shop.example.com/new">our news</a> and '
    '<a href="http://blog.example.com/">the blog</a>.</p></body></html>'
)
_URL = re.compile(r"https?://[^\s\"<>()]+")


@pytest.fixture
def campaign():
    owner = MarketerFactory(username="zoe", organization="Zoe & Co", postal_address="Hauptstrasse 1")
    account = SmtpAccountFactory(owner=owner, from_email="news@zoe.example", tracking_domain=DOMAIN)
    return CampaignFactory(owner=owner, smtp_account=account, body_html=BODY, track_opens=True, track_clicks=True)


def built(campaign):
    """A message as the sender builds it: the campaign, its owner and account read by the batch's load."""
    row = EmailFactory(
        campaign=campaign, contact=ContactFactory(owner=campaign.owner), message_id=message.new_message_id()
    )
    loaded = campaign_loader.campaigns_with_owner_and_account([campaign.pk])[campaign.pk]
    _, raw = message.build(email=row, campaign=loaded, account=loaded.smtp_account)
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    text = parsed.get_body(preferencelist=("plain",)).get_content()
    html = parsed.get_body(preferencelist=("html",)).get_content()
    return row, str(parsed["List-Unsubscribe"]), text, html


def tracking_urls(list_unsubscribe, text, html):
    """Every URL of the message that is not one of the body's own targets."""
    own = {"https://shop.example.com/new", "http://blog.example.com/"}
    return [url for url in _URL.findall(" ".join([list_unsubscribe, text, html])) if url not in own]


def test_every_tracking_url_is_on_the_verified_domain(campaign):
    campaign.smtp_account.tracking_domain_verified_at = timezone.now()
    campaign.smtp_account.save()
    site = urlsplit(settings.SITE_URL)
    expected = f"{site.scheme}://{DOMAIN}" + (f":{site.port}" if site.port else "")  # SITE_URL's scheme and port
    assert message.tracking_site(campaign.smtp_account) == expected

    row, list_unsubscribe, text, html = built(campaign)

    urls = tracking_urls(list_unsubscribe, text, html)
    assert len([u for u in urls if "/t/c/" in u]) == 2  # both links
    assert len([u for u in urls if "/t/o/" in u]) == 1  # the pixel
    assert len([u for u in urls if "/t/u/" in u]) >= 3  # List-Unsubscribe, HTML and text footers
    assert urls and all(url.startswith(expected + "/t/") for url in urls), urls
    assert settings.SITE_URL not in list_unsubscribe + text + html
    assert list_unsubscribe.strip("<>") == message.unsubscribe_url(row.pk, site=expected)


def test_an_unverified_or_failed_domain_falls_back_to_site_url(campaign):
    account = campaign.smtp_account
    account.tracking_domain_error = "http://links.zoe.example/ could not be reached."
    account.tracking_domain_checked_at = timezone.now()
    account.save()

    _, list_unsubscribe, text, html = built(campaign)

    urls = tracking_urls(list_unsubscribe, text, html)
    assert urls and all(url.startswith(settings.SITE_URL + "/t/") for url in urls), urls
    assert DOMAIN not in list_unsubscribe + text + html


def test_the_domain_costs_no_query_per_message(campaign, django_assert_num_queries):
    campaign.smtp_account.tracking_domain_verified_at = timezone.now()
    campaign.smtp_account.save()
    loaded = campaign_loader.campaigns_with_owner_and_account([campaign.pk])[campaign.pk]

    with django_assert_num_queries(0):
        site = message.tracking_site(loaded.smtp_account)
        message.open_pixel_url(1, site=site)
        message.unsubscribe_url(1, site=site)

    assert urlsplit(site).hostname == DOMAIN
