"""A campaign's analytics tell the truth about a stuck send: what blocks it (the campaign paused, its SMTP
account paused or unable to reach its server), in the marketer's zone and the admin's format, and no estimate
while nothing can move; an estimate within the account's limits otherwise."""

import datetime as dt
import zoneinfo

import pytest
from django.urls import reverse
from django.utils import formats, timezone

from campaigns.models import Campaign, Email
from tests.factories import CampaignFactory, EmailFactory, MarketerFactory, SmtpAccountFactory

pytestmark = pytest.mark.django_db

KOLKATA = zoneinfo.ZoneInfo("Asia/Kolkata")


@pytest.fixture
def owner(db):
    return MarketerFactory(username="kolkata-marketer", timezone="Asia/Kolkata")


@pytest.fixture
def owner_client(client, owner):
    client.force_login(owner)
    return client


def sending(owner, account, *, unsent=6, status=Campaign.Status.SENDING, **fields):
    campaign = CampaignFactory(
        owner=owner, smtp_account=account, name="Stuck", status=status, started_at=timezone.now(), **fields
    )
    for n in range(unsent):
        EmailFactory(campaign=campaign, to_email=f"r{n}@example.org", status=Email.Status.PENDING)
    return campaign


def progress(client, campaign):
    return client.get(reverse("campaign_analytics_data", args=[campaign.pk])).json()["progress"]


def admin_format(moment):
    return formats.date_format(moment.astimezone(KOLKATA), "DATETIME_FORMAT")


def test_an_unreachable_account_shows_since_when_and_the_next_try_and_no_estimate(owner_client, owner):
    since = timezone.now() - dt.timedelta(minutes=7)
    next_try = timezone.now() + dt.timedelta(minutes=4)
    account = SmtpAccountFactory(
        owner=owner,
        name="Office relay",
        max_per_minute=15,
        unreachable_since=since,
        backoff_until=next_try,
        backoff_seconds=240,
        last_connection_error="Connection refused",
    )
    campaign = sending(owner, account)

    p = progress(owner_client, campaign)
    page = owner_client.get(reverse("campaign_analytics", args=[campaign.pk])).content.decode()

    assert p["eta_seconds"] == 0
    assert p["blocked"]["kind"] == "account_unreachable"
    assert p["blocked"]["text"] == (
        f"The SMTP account “Office relay” cannot reach its server since {admin_format(since)}: Connection refused. "
        f"Next try at {admin_format(next_try)}; no email is lost or spent meanwhile."
    )
    # Shown from the first paint, not only once the script has polled.
    assert 'id="sending-blocked"' in page and "cannot reach its server since" in page
    assert 'data-kind="account_unreachable"' in page


def test_a_paused_account_shows_why_and_until_when_and_no_estimate(owner_client, owner):
    until = timezone.now() + dt.timedelta(minutes=50)
    account = SmtpAccountFactory(
        owner=owner, name="Main", max_per_minute=600, paused_until=until, pause_reason="550 5.4.5 Daily quota exceeded"
    )

    p = progress(owner_client, sending(owner, account))

    assert p["eta_seconds"] == 0
    assert p["blocked"] == {
        "kind": "account_paused",
        "text": f"The SMTP account “Main” is paused until {admin_format(until)}: 550 5.4.5 Daily quota exceeded. "
        "Its campaigns resume by themselves then.",
        "since_display": "",
        "until_display": admin_format(until),
    }


def test_a_paused_campaign_has_no_estimate(owner_client, owner):
    account = SmtpAccountFactory(owner=owner, max_per_minute=600)
    campaign = sending(owner, account, status=Campaign.Status.PAUSED, status_reason="Paused by alice")

    p = progress(owner_client, campaign)

    assert p["eta_seconds"] == 0
    assert p["blocked"]["kind"] == "campaign_paused"
    assert p["blocked"]["text"] == "The campaign is paused: Paused by alice. Nothing is sent until it is resumed."


def test_a_healthy_send_estimates_within_the_accounts_limits(owner_client, owner):
    account = SmtpAccountFactory(owner=owner, max_per_minute=60, max_per_hour=4, max_per_day=2000)
    campaign = sending(owner, account, unsent=6)

    p = progress(owner_client, campaign)

    assert p["blocked"] is None
    # 6 at 60/min would be 6 s, but only 4 go out in an hour: the last two wait for the next hour.
    assert p["eta_seconds"] == 3600
    assert p["sharing_campaigns"] == 0


def test_the_estimate_says_when_other_campaigns_share_the_account(owner_client, owner):
    account = SmtpAccountFactory(owner=owner, max_per_minute=60)
    campaign = sending(owner, account, unsent=6)
    sending(owner, account, unsent=1)

    p = progress(owner_client, campaign)

    assert (p["eta_seconds"], p["sharing_campaigns"]) == (6, 1)


def test_a_scheduled_campaign_whose_account_is_down_says_so(owner_client, owner):
    account = SmtpAccountFactory(owner=owner, unreachable_since=timezone.now(), last_connection_error="timed out")
    campaign = CampaignFactory(owner=owner, smtp_account=account, status=Campaign.Status.SCHEDULED)

    assert progress(owner_client, campaign)["blocked"]["kind"] == "account_unreachable"


def test_updated_is_the_servers_time_in_the_users_zone_and_the_admins_format(owner_client, owner):
    campaign = sending(owner, SmtpAccountFactory(owner=owner))
    before = timezone.now().replace(microsecond=0)

    shown = owner_client.get(reverse("campaign_analytics_data", args=[campaign.pk])).json()["updated_display"]
    dashboard = owner_client.get(reverse("dashboard_data")).json()["generated_display"]

    expected = {
        formats.date_format((before + dt.timedelta(seconds=s)).astimezone(KOLKATA), "N j, Y, g:i:s a")
        for s in range(0, 5)
    }
    assert shown in expected and dashboard in expected
