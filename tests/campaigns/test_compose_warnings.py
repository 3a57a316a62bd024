"""The compose page warns when a campaign's HTML is so short that the open pixel makes it read as an
image-only message (SpamAssassin's HTML_IMAGE_ONLY rules); a text-only campaign's preview has no HTML."""

import pytest
from django.urls import reverse

from campaigns import admin_compose
from delivery import previews
from tests.campaigns.test_personalize import campaign_post
from tests.factories import CampaignFactory, SmtpAccountFactory

pytestmark = pytest.mark.django_db

SHORT = "<p>We open an hour earlier from Monday.</p>"
LONG = "<p>" + "The roses along the south wall are budding, come and see them. " * 60 + "</p>"


def warnings_of(response):
    return [str(m) for m in response.context["messages"] if m.level_tag == "warning"]


@pytest.fixture
def account(marketer):
    return SmtpAccountFactory(owner=marketer)


def test_saving_a_short_html_body_with_the_open_pixel_warns_with_its_length(marketer_client, account):
    response = marketer_client.post(
        reverse("admin:campaigns_campaign_add"), campaign_post(account, body_html=SHORT), follow=True
    )

    (warning,) = warnings_of(response)
    assert warning.startswith("The HTML of this message is short (")
    assert "characters with its footer and the open pixel) and holds an image (the open pixel is one)" in warning
    assert "SpamAssassin's HTML_IMAGE_ONLY rules, up to 3,200 characters" in warning
    assert warning.endswith("Write more, turn off open tracking, or send it as plain text only.")


def test_a_short_html_body_with_an_image_of_its_own_warns_without_the_pixel(marketer):
    logo = '<p><img src="https://garden.example/logo.png" alt="Green Valley"></p>'
    campaign = CampaignFactory(owner=marketer, body_html=logo + SHORT, track_opens=False)

    (warning,) = admin_compose.campaign_warnings(campaign)

    assert "characters with its footer) and holds an image: spam filters" in warning
    assert warning.endswith("Write more, remove the images, or send it as plain text only.")


@pytest.mark.parametrize(
    "fields",
    [
        {"body_html": LONG},
        {"body_html": SHORT, "track_opens": False},
        {"body_html": SHORT, "text_only": True},
        {"body_html": "", "body_text": "We open an hour earlier from Monday."},
    ],
)
def test_no_warning_for_a_long_body_no_pixel_or_plain_text(marketer, fields):
    campaign = CampaignFactory(owner=marketer, **fields)

    assert previews.short_html_with_image(campaign=campaign) is None


def test_the_length_counts_the_footer_and_the_pixel(marketer):
    campaign = CampaignFactory(owner=marketer, body_html=SHORT)
    rendered = previews.preview(campaign=campaign)

    assert previews.short_html_with_image(campaign=campaign) > len(rendered.html) > len(SHORT)


def test_the_preview_shows_the_warning_and_a_text_only_campaign_shows_no_html(marketer_client, marketer):
    short = CampaignFactory(owner=marketer, body_html=SHORT)
    page = marketer_client.get(reverse("admin:campaigns_campaign_preview", args=[short.pk])).content.decode()
    assert "The HTML of this message is short" in page and 'id="preview-html"' in page

    plain = CampaignFactory(owner=marketer, body_html=SHORT, body_text="Earlier from Monday.", text_only=True)
    page = marketer_client.get(reverse("admin:campaigns_campaign_preview", args=[plain.pk])).content.decode()
    assert "The HTML of this message is short" not in page
    assert 'id="preview-html"' not in page and "Plain text only" in page and "Earlier from Monday." in page
