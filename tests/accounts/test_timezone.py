"""Every marketer enters and reads dates in their own time zone; the database keeps UTC."""

import datetime as dt
import re

import pytest
from django.urls import reverse

from accounts.models import User
from campaigns.models import Campaign
from tests.factories import CampaignFactory, ContactFactory, ContactListFactory, MarketerFactory, SuperuserFactory

pytestmark = pytest.mark.django_db

ADD_URL = "/admin/campaigns/campaign/add/"
PROFILE_URL = "/accounts/profile/"


def post_campaign(client, name, date="2030-12-01", time="10:00"):
    """A draft of the logged-in marketer, scheduled on its Review and send page for `date` `time`
    as typed there (every warning ticked); the POST's response."""
    owner = User.objects.get(pk=client.session["_auth_user_id"])
    readers = ContactListFactory(owner=owner, contacts=[ContactFactory(owner=owner)])
    campaign = CampaignFactory(owner=owner, name=name, lists=[readers])
    url = reverse("admin:campaigns_campaign_review", args=[campaign.pk])
    warnings = [check.code for check in client.get(url).context["warnings"]]
    return client.post(url, {"do": "schedule", "scheduled_at": f"{date}T{time}", "acknowledged": warnings})


def shown_schedule(client, campaign):
    """The (date, time) the change page's "Scheduled for" line shows."""
    page = client.get(f"/admin/campaigns/campaign/{campaign.pk}/change/").content.decode()
    shown = re.search(r'<div class="readonly">(\d{4}-\d\d-\d\d) (\d\d:\d\d) \(', page)
    assert shown, "the change page shows no time it is scheduled for"
    return shown.group(1), shown.group(2)


def logged_in(client, user):
    client.force_login(user)
    return client


def test_kolkata_marketer_schedules_in_ist(client):
    user = MarketerFactory(username="kavya", timezone="Asia/Kolkata")
    logged_in(client, user)

    response = post_campaign(client, "Diwali")
    assert response.status_code == 302, response.context["form"].errors if response.context else response

    campaign = Campaign.objects.get(name="Diwali")
    assert campaign.owner == user
    assert campaign.scheduled_at == dt.datetime(2030, 12, 1, 4, 30, tzinfo=dt.UTC)
    assert shown_schedule(client, campaign) == ("2030-12-01", "10:00")


def test_new_york_marketer_gets_a_different_utc_value(client):
    user = MarketerFactory(username="nora", timezone="America/New_York")
    logged_in(client, user)

    assert post_campaign(client, "Holiday").status_code == 302

    campaign = Campaign.objects.get(name="Holiday")
    # 1 December is standard time in New York: UTC-5.
    assert campaign.scheduled_at == dt.datetime(2030, 12, 1, 15, 0, tzinfo=dt.UTC)
    assert shown_schedule(client, campaign) == ("2030-12-01", "10:00")


def test_same_instant_reads_differently_for_each_owner_zone(client):
    """A superuser in UTC sees the stored instant of a Kolkata marketer's campaign in UTC."""
    user = MarketerFactory(username="kavya", timezone="Asia/Kolkata")
    logged_in(client, user)
    assert post_campaign(client, "Diwali").status_code == 302
    campaign = Campaign.objects.get(name="Diwali")

    root = SuperuserFactory(username="root", timezone="UTC")
    client.force_login(root)
    assert shown_schedule(client, campaign) == ("2030-12-01", "04:30")


def test_profile_changes_timezone_and_the_admin_follows(client):
    user = MarketerFactory(username="kavya", timezone="Asia/Kolkata")
    logged_in(client, user)
    assert post_campaign(client, "Diwali").status_code == 302
    campaign = Campaign.objects.get(name="Diwali")

    page = client.get(PROFILE_URL)
    assert page.status_code == 200
    assert 'name="timezone"' in page.content.decode()

    response = client.post(
        PROFILE_URL,
        {
            "first_name": "Kavya",
            "last_name": "Rao",
            "email": user.email,
            "timezone": "America/New_York",
            "organization": user.organization,
            "postal_address": user.postal_address,
        },
    )
    assert response.status_code == 302
    assert response["Location"] == PROFILE_URL
    user.refresh_from_db()
    assert user.timezone == "America/New_York"
    assert user.first_name == "Kavya"

    # The stored instant is unchanged; it now reads in New York time (the day before, 23:30).
    campaign.refresh_from_db()
    assert campaign.scheduled_at == dt.datetime(2030, 12, 1, 4, 30, tzinfo=dt.UTC)
    assert shown_schedule(client, campaign) == ("2030-11-30", "23:30")


def test_profile_ignores_permission_fields(client):
    user = MarketerFactory(username="kavya", timezone="Asia/Kolkata")
    groups_before = set(user.groups.values_list("name", flat=True))
    approved_before = user.approved_at
    logged_in(client, user)

    response = client.post(
        PROFILE_URL,
        {
            "first_name": "",
            "last_name": "",
            "email": user.email,
            "timezone": "Europe/London",
            "organization": user.organization,
            "postal_address": user.postal_address,
            # Fields a marketer must never set about themselves:
            "is_superuser": "on",
            "is_staff": "",
            "is_active": "on",
            "username": "root",
            "groups": ["1"],
            "user_permissions": ["1", "2"],
            "approved_at": "2020-01-01 00:00",
            "access_expires_at": "2099-01-01 00:00",
            "email_confirmed_at": "",
            "password": "plain",
        },
    )
    assert response.status_code == 302
    user.refresh_from_db()
    assert user.timezone == "Europe/London"
    assert user.is_superuser is False
    assert user.is_staff is True
    assert user.username == "kavya"
    assert user.approved_at == approved_before
    assert user.access_expires_at is None
    assert user.email_confirmed_at is not None
    assert user.user_permissions.count() == 0
    assert set(user.groups.values_list("name", flat=True)) == groups_before
    assert user.password != "plain"


def test_profile_refuses_an_unknown_timezone(client):
    user = MarketerFactory(username="kavya", timezone="Asia/Kolkata")
    logged_in(client, user)
    response = client.post(
        PROFILE_URL, {"email": user.email, "timezone": "Mars/Olympus_Mons", "organization": "", "postal_address": ""}
    )
    assert response.status_code == 200
    assert "timezone" in response.context["form"].errors
    user.refresh_from_db()
    assert user.timezone == "Asia/Kolkata"


def test_profile_refuses_another_accounts_address(client):
    """Addresses stay unique, as sign-up requires: no taking over someone else's address."""
    MarketerFactory(username="vikram", email="vikram@example.in")
    user = MarketerFactory(username="kavya", timezone="Asia/Kolkata")
    logged_in(client, user)
    response = client.post(
        PROFILE_URL,
        {"email": "VIKRAM@example.in", "timezone": "Asia/Kolkata", "organization": "", "postal_address": ""},
    )
    assert response.status_code == 200
    assert "email" in response.context["form"].errors
    assert User.objects.get(pk=user.pk).email == "kavya@example.com"


def test_profile_needs_login(client):
    response = client.get(PROFILE_URL)
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")
