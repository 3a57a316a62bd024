"""sending.services.pause_account / resume_account: the one writer of SmtpAccountState.paused_until."""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from campaigns.models import Campaign
from delivery import dispatcher
from sending import services
from tests.factories import CampaignFactory, SmtpAccountFactory

pytestmark = pytest.mark.django_db


def test_a_pause_lasts_account_pause_seconds_or_the_seconds_given(marketer, settings):
    settings.ACCOUNT_PAUSE_SECONDS = 600
    account = SmtpAccountFactory(owner=marketer)
    now = timezone.now()
    assert services.pause_account(account_id=account.pk, reason="535 auth failed", now=now) == now + timedelta(
        minutes=10
    )
    account.refresh_from_db()
    assert (account.state.paused_until, account.state.pause_reason, account.state.paused_at) == (
        now + timedelta(minutes=10),
        "535 auth failed",
        now,
    )
    services.pause_account(account_id=account.pk, reason="quota", now=now, seconds=60)
    account.refresh_from_db()
    assert (account.state.paused_until, account.state.pause_reason) == (now + timedelta(seconds=60), "quota")


def test_a_paused_account_is_not_sent_from_until_resumed(marketer):
    account = SmtpAccountFactory(owner=marketer)
    CampaignFactory(owner=marketer, smtp_account=account, status=Campaign.Status.SENDING)
    now = timezone.now()
    services.pause_account(account_id=account.pk, reason="quota", now=now)
    assert list(dispatcher.sendable_accounts(now=now)) == []
    assert services.resume_account(account_id=account.pk, now=now) is True
    assert services.resume_account(account_id=account.pk, now=now) is False  # nothing left to resume
    account.refresh_from_db()
    assert (account.state.paused_until, account.state.pause_reason, account.state.paused_at) == (None, "", None)
    assert list(dispatcher.sendable_accounts(now=now)) == [account]


def test_the_admin_action_resumes_the_marketers_own_paused_accounts_only(marketer_client, marketer, other_marketer):
    until = timezone.now() + timedelta(hours=1)
    mine = SmtpAccountFactory(owner=marketer, paused_until=until, pause_reason="quota")
    theirs = SmtpAccountFactory(owner=other_marketer, paused_until=until, pause_reason="quota")
    response = marketer_client.post(
        reverse("admin:sending_smtpaccount_changelist"),
        {"action": "resume_sending", "_selected_action": [mine.pk, theirs.pk]},
    )
    assert response.status_code == 302
    mine.refresh_from_db()
    theirs.refresh_from_db()
    assert mine.state.paused_until is None and not mine.is_paused
    assert theirs.state.paused_until == until


def test_a_backoff_doubles_per_failed_try_to_its_cap_and_a_working_connection_clears_it(marketer, settings):
    settings.ACCOUNT_BACKOFF_BASE_SECONDS, settings.ACCOUNT_BACKOFF_MAX_SECONDS = 30, 1800
    account = SmtpAccountFactory(owner=marketer)
    CampaignFactory(owner=marketer, smtp_account=account, status=Campaign.Status.SENDING)
    start = now = timezone.now()
    rests = []
    for _ in range(8):
        until = services.back_off_account(account_id=account.pk, error="Connection refused", now=now)
        rests.append(int((until - now).total_seconds()))
        # A second batch failing within the rest counts nothing more.
        assert services.back_off_account(account_id=account.pk, error="again", now=now) is None
        assert list(dispatcher.sendable_accounts(now=now)) == []
        now = until
    assert rests == [30, 60, 120, 240, 480, 960, 1800, 1800]
    account.refresh_from_db()
    assert (account.state.unreachable_since, account.state.last_connection_error) == (start, "Connection refused")
    assert list(dispatcher.sendable_accounts(now=now)) == [account]

    assert services.clear_backoff(account_id=account.pk) is True
    assert services.clear_backoff(account_id=account.pk) is False
    account.refresh_from_db()
    assert (account.state.backoff_seconds, account.state.backoff_until, account.state.unreachable_since) == (
        0,
        None,
        None,
    )
    # The next outage starts again from the base.
    assert services.back_off_account(account_id=account.pk, error="x", now=now) == now + timedelta(seconds=30)
