"""Reads for the preview page: its campaign's last test send (delivery.previews)."""

from datetime import datetime, timedelta

from django.conf import settings

from campaigns.models import Campaign, CampaignTestSend


def last_test_send(*, campaign: Campaign) -> CampaignTestSend | None:
    return campaign.test_sends.order_by("-requested_at", "-id").first()


def awaiting_outcome(*, test_send: CampaignTestSend | None, now: datetime) -> bool:
    """Whether the test send has no outcome yet and a worker may still be on it."""
    return test_send is not None and test_send.finished_at is None and now - test_send.requested_at < outcome_patience()


def outcome_patience() -> timedelta:
    """The longest a test send can take once a worker has it, and a minute for the queue: opening a
    connection, each address's transaction and a reconnection after each, and closing, each bounded
    by SMTP_TIMEOUT (SmtpSession). Past it, a test without an outcome is one no worker finished."""
    steps = 2 * CampaignTestSend.MAX_ADDRESSES + 3
    return timedelta(seconds=steps * settings.SMTP_TIMEOUT + 60)
