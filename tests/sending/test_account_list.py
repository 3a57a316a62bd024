"""The SMTP accounts list: the server and the limits each one column (eleven columns passed the edge of a
1366 px window), and times as the admin shows them, in the user's zone."""

import datetime as dt
import zoneinfo

import pytest
from django.urls import reverse
from django.utils import formats, timezone

from tests.factories import SmtpAccountFactory

pytestmark = pytest.mark.django_db


def test_the_list_shows_the_server_and_the_limits_in_one_column_each(marketer_client, marketer):
    SmtpAccountFactory(
        owner=marketer,
        host="smtp.example.net",
        port=465,
        security="ssl",
        max_per_minute=15,
        max_per_hour=500,
        max_per_day=2000,
        batch_size=50,
    )

    page = marketer_client.get(reverse("admin:sending_smtpaccount_changelist")).content.decode()

    assert '<td class="field-server">smtp.example.net:465 (SSL/TLS (implicit))</td>' in page
    assert '<td class="field-limits">15/min · 500/hour · 2,000/day, in batches of 50</td>' in page
    for gone in ("field-host", "field-port", "field-max_per_hour", "field-batch_size"):
        assert gone not in page


def test_an_unreachable_accounts_next_try_is_in_the_users_zone_and_the_admins_format(marketer_client, marketer):
    marketer.timezone = "America/New_York"
    marketer.save(update_fields=["timezone"])
    next_try = timezone.now() + dt.timedelta(minutes=30)
    SmtpAccountFactory(owner=marketer, unreachable_since=timezone.now(), backoff_until=next_try)

    page = marketer_client.get(reverse("admin:sending_smtpaccount_changelist")).content.decode()

    shown = formats.date_format(next_try.astimezone(zoneinfo.ZoneInfo("America/New_York")), "DATETIME_FORMAT")
    assert f"Cannot reach the server; next try at {shown}" in page
