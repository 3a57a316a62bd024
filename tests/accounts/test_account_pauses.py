"""accounts.services.pause_account / resume_account: the one writer of SmtpAccount.paused_until."""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from accounts import services
from campaigns.delivery import dispatcher
from campaigns.models import Campaign
from tests.factories import CampaignFactory, SmtpAccountFactory

pytestmark = pytest.mark.django_db


def test_a_pause_lasts_account_pause_seconds_or_the_seconds_given(marketer, settings):
    settings.ACCOUNT_PAUSE_SECONDS = 600
    account = SmtpAccountFactory(owner=marketer)
    now = timezone.now()
    assert services.pause_account(account_id=account.pk, reason="535 auth failed", now=now) == now + timedelta(minutes=10)
    account.refresh_from_db()
    assert (account.paused_until, account.pause_reason, account.updated_at) == (
        now + timedelta(minutes=10), "535 auth failed", now)
    services.pause_account(account_id=account.pk, reason="quota", now=now, seconds=60)
    account.refresh_from_db()
    assert (account.paused_until, account.pause_reason) == (now + timedelta(seconds=60), "quota")


def test_a_paused_account_is_not_sent_from_until_resumed(marketer):
    account = SmtpAccountFactory(owner=marketer)
    CampaignFactory(owner=marketer, smtp_account=account, status=Campaign.Status.SENDING)
    now = timezone.now()
    services.pause_account(account_id=account.pk, reason="quota", now=now)
    assert list(dispatcher.sendable_accounts(now=now)) == []
    assert services.resume_account(account_id=account.pk, now=now) is True
    assert services.resume_account(account_id=account.pk, now=now) is False  # nothing left to resume
    account.refresh_from_db()
    assert (account.paused_until, account.pause_reason) == (None, "")
    assert list(dispatcher.sendable_accounts(now=now)) == [account]


def test_the_admin_action_resumes_the_marketers_own_paused_accounts_only(marketer_client, marketer, other_marketer):
    until = timezone.now() + timedelta(hours=1)
    mine = SmtpAccountFactory(owner=marketer, paused_until=until, pause_reason="quota")
    theirs = SmtpAccountFactory(owner=other_marketer, paused_until=until, pause_reason="quota")
    response = marketer_client.post(reverse("admin:accounts_smtpaccount_changelist"),
                                    {"action": "resume_sending", "_selected_action": [mine.pk, theirs.pk]})
    assert response.status_code == 302
    mine.refresh_from_db()
    theirs.refresh_from_db()
    assert mine.paused_until is None and not mine.is_paused
    assert theirs.paused_until == until
