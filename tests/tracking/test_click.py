"""Click redirects go to a stored Link of the email's own campaign, and nowhere else."""

from datetime import timedelta

import pytest
from django.conf import settings
from django.db.models import F
from django.utils import timezone

from campaigns.models import Email
from delivery import message
from tests.factories import CampaignFactory, LinkFactory
from tests.tracking.conftest import READER_UA
from tracking import tokens
from tracking.models import Event

pytestmark = pytest.mark.django_db


def click_path(email_id, link_id):
    return f"/t/c/{tokens.click_token(email_id, link_id)}/"


def test_a_click_redirects_to_the_stored_url_and_counts_as_the_first_open(anonymous, sent_email):
    link = LinkFactory(campaign=sent_email.campaign, url="https://shop.example.com/sale?x=1&y=2")
    response = anonymous.get(click_path(sent_email.pk, link.pk), HTTP_USER_AGENT=READER_UA)
    assert response.status_code == 302 and response["Location"] == link.url
    assert "no-store" in response["Cache-Control"] and response["Referrer-Policy"] == "no-referrer"
    sent_email.refresh_from_db()
    assert sent_email.click_count == 1 and sent_email.first_clicked_at is not None
    assert sent_email.first_opened_at == sent_email.first_clicked_at and sent_email.open_count == 1
    event = Event.objects.get()
    assert (event.kind, event.link_id, event.is_machine) == ("click", link.pk, False)


def test_a_click_keeps_an_earlier_open(anonymous, sent_email):
    opened = timezone.now() - timedelta(minutes=30)
    Email.objects.filter(pk=sent_email.pk).update(first_opened_at=opened, open_count=3)
    link = LinkFactory(campaign=sent_email.campaign)
    anonymous.get(click_path(sent_email.pk, link.pk), HTTP_USER_AGENT=READER_UA)
    sent_email.refresh_from_db()
    assert sent_email.first_opened_at == opened and sent_email.open_count == 3 and sent_email.click_count == 1


def test_a_link_of_another_campaign_never_redirects(anonymous, sent_email):
    foreign = LinkFactory(campaign=CampaignFactory(), url="https://evil.example/")
    response = anonymous.get(click_path(sent_email.pk, foreign.pk))
    assert response.status_code == 404 and "Location" not in response
    assert not Event.objects.exists()


@pytest.mark.parametrize("mangle", ["forged", "altered", "open-token", "unsubscribe-token", "missing-link"])
def test_forged_altered_and_foreign_tokens_get_404_and_no_redirect(anonymous, sent_email, mangle):
    link = LinkFactory(campaign=sent_email.campaign)
    token = tokens.click_token(sent_email.pk, link.pk)
    token = {
        "forged": f"{sent_email.pk}-{link.pk}.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "altered": f"{sent_email.pk}-{link.pk + 1}." + token.split(".")[1],
        "open-token": tokens.open_token(sent_email.pk),
        "unsubscribe-token": tokens.unsubscribe_token(sent_email.pk),
        "missing-link": tokens.click_token(sent_email.pk, link.pk + 1000),
    }[mangle]
    response = anonymous.get(f"/t/c/{token}/")
    assert response.status_code == 404 and "Location" not in response
    sent_email.refresh_from_db()
    assert sent_email.click_count == 0 and not Event.objects.exists()


def test_no_url_is_ever_taken_from_the_query_string(anonymous, sent_email):
    link = LinkFactory(campaign=sent_email.campaign, url="https://shop.example.com/")
    response = anonymous.get(
        click_path(sent_email.pk, link.pk) + "?url=https://evil.example/&next=https://evil.example/"
    )
    assert response["Location"] == "https://shop.example.com/"


def test_a_deleted_campaign_records_nothing_and_redirects_nowhere(anonymous, sent_email):
    link = LinkFactory(campaign=sent_email.campaign)
    path = click_path(sent_email.pk, link.pk)
    sent_email.campaign.delete()
    assert anonymous.get(path).status_code == 404
    assert not Event.objects.exists()


def test_a_scanner_click_redirects_but_is_a_machine_event_not_a_click(anonymous, sent_email):
    link = LinkFactory(campaign=sent_email.campaign)
    response = anonymous.get(click_path(sent_email.pk, link.pk), HTTP_USER_AGENT="Mimecast URL Protect")
    assert response.status_code == 302
    sent_email.refresh_from_db()
    assert sent_email.click_count == 0 and sent_email.first_opened_at is None
    assert Event.objects.get().is_machine


def test_every_tracked_link_of_a_built_message_resolves_to_its_own_url(anonymous, sent_email):
    campaign = sent_email.campaign
    campaign.body_html = '<p><a href="https://a.example/1">one</a> <a href="https://b.example/2?q=%C3%A9">two</a></p>'
    campaign.save()
    Email.objects.filter(pk=sent_email.pk).update(sent_at=timezone.now() - timedelta(hours=1))
    _, raw = message.build(email=sent_email, campaign=campaign, account=campaign.smtp_account)
    import email as email_lib
    import email.policy
    import re

    html = email_lib.message_from_bytes(raw, policy=email.policy.default).get_body(("html",)).get_content()
    clicks = re.findall(r'href="http://[^"]+(/t/c/[^"]+)"', html)
    assert len(clicks) == 2
    targets = [anonymous.get(path, HTTP_USER_AGENT=READER_UA)["Location"] for path in clicks]
    assert targets == ["https://a.example/1", "https://b.example/2?q=%C3%A9"]


def test_a_click_repeated_within_the_window_still_redirects_and_records_nothing(anonymous, sent_email):
    link = LinkFactory(campaign=sent_email.campaign, url="https://shop.example.com/sale")
    other = LinkFactory(campaign=sent_email.campaign, url="https://shop.example.com/about")
    for _ in range(20):
        response = anonymous.get(click_path(sent_email.pk, link.pk), HTTP_USER_AGENT=READER_UA)
        assert response.status_code == 302 and response["Location"] == link.url
    sent_email.refresh_from_db()
    assert sent_email.click_count == 1 and Event.objects.count() == 1

    # Another link of the same email is a click of its own.
    assert anonymous.get(click_path(sent_email.pk, other.pk), HTTP_USER_AGENT=READER_UA)["Location"] == other.url
    Event.objects.update(at=F("at") - timedelta(seconds=settings.TRACKING_REPEAT_SECONDS + 1))
    anonymous.get(click_path(sent_email.pk, link.pk), HTTP_USER_AGENT=READER_UA)
    anonymous.get(click_path(sent_email.pk, link.pk), HTTP_USER_AGENT=READER_UA)
    sent_email.refresh_from_db()
    # The counters are what is recorded.
    assert sent_email.click_count == Event.objects.filter(kind="click", is_machine=False).count() == 3
    assert sorted(Event.objects.values_list("link_id", flat=True)) == sorted([link.pk, link.pk, other.pk])
    assert sent_email.open_count == 1


def test_a_scanners_click_never_hides_the_readers_own(anonymous, sent_email):
    link = LinkFactory(campaign=sent_email.campaign)
    for user_agent in ("Mimecast URL Protect", READER_UA, "Mimecast URL Protect", READER_UA):
        assert anonymous.get(click_path(sent_email.pk, link.pk), HTTP_USER_AGENT=user_agent).status_code == 302
    sent_email.refresh_from_db()
    assert sent_email.click_count == 1
    assert sorted(Event.objects.values_list("is_machine", flat=True)) == [False, True]


def test_a_head_request_redirects_but_is_not_a_click(anonymous, sent_email):
    link = LinkFactory(campaign=sent_email.campaign, url="https://shop.example.com/sale")
    response = anonymous.head(click_path(sent_email.pk, link.pk), HTTP_USER_AGENT=READER_UA)
    assert response.status_code == 302 and response["Location"] == link.url
    assert "no-store" in response["Cache-Control"]
    sent_email.refresh_from_db()
    assert sent_email.click_count == 0 and sent_email.open_count == 0 and not Event.objects.exists()
    foreign = LinkFactory(campaign=CampaignFactory(), url="https://evil.example/")
    assert anonymous.head(click_path(sent_email.pk, foreign.pk)).status_code == 404
