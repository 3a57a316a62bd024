"""The adaptive rate against a real Postfix (Debian's package, a private instance): STARTTLS with a
certificate of our test CA, and its per-client message rate limit (anvil) at 30 a minute while the
account is configured at 60. Real time, real replies: this test takes about 75 s.

The exact outcome: Postfix takes 30 in the first minute and refuses the 31st with its own words; the
account learns 28/min from those 30, waits for Postfix's minute to reopen, and sends the rest; every
message reaches Postfix once, one deferred in all, no 60 s window above 30.
"""

import time
from datetime import timedelta

import pytest
from django.utils import timezone

from campaigns.models import Email
from campaigns.services import lifecycle
from delivery import dispatcher, sender
from tests.factories import CampaignFactory, ContactFactory, ContactListFactory, SmtpAccountFactory
from tests.postfix import start_postfix
from tests.smtp_server import tls_files  # noqa: F401  (pytest fixture)

S = Email.Status
LIMIT = 30
RECIPIENTS = 36


@pytest.fixture
def postfix(tls_files):  # noqa: F811
    instance = start_postfix(
        tls=tls_files,
        main_cf={
            "smtpd_client_message_rate_limit": LIMIT,
            "anvil_rate_time_unit": "60s",
        },
    )
    yield instance
    instance.stop()


def send_until_done(campaign, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        dispatcher.tick(enqueue=sender.send_batch)
        if not Email.objects.filter(campaign=campaign).exclude(status=S.SENT).exists():
            return
        time.sleep(1)
    pytest.fail(
        f"not all sent within {timeout} s: {list(Email.objects.filter(campaign=campaign).values_list('status', flat=True))}"
    )


def test_postfix_rate_limit_is_learned_and_held(db, marketer, postfix, tls_files, settings):  # noqa: F811
    settings.SMTP_ALLOW_PRIVATE_HOSTS = True
    settings.SMTP_CA_FILE = str(tls_files.ca_file)
    settings.EMAIL_RETRY_LADDER = [30, 60, 3600]
    settings.MAX_PACING_WAIT_SECONDS = 5  # no delayed continuations in the test process: sleep the waits
    account = SmtpAccountFactory(
        owner=marketer,
        host="localhost",
        port=postfix.port,
        security="starttls",
        username="",
        from_email="news@alice.example",
        max_per_minute=2 * LIMIT,
        max_per_hour=10000,
        max_per_day=10000,
    )
    contacts = ContactFactory.create_batch(RECIPIENTS, owner=marketer)
    campaign = CampaignFactory(
        owner=marketer, smtp_account=account, lists=[ContactListFactory(owner=marketer, contacts=contacts)]
    )
    lifecycle.send_now(campaign=campaign)

    send_until_done(campaign, timeout=150)

    account.refresh_from_db()
    assert account.state.observed_limit_per_minute == LIMIT
    assert account.state.learned_per_minute == 28  # 95 % of the 30 Postfix took in the minute
    assert "450 4.7.1 Error: too much mail from 127.0.0.1" in account.state.rate_note
    emails = list(Email.objects.filter(campaign=campaign))
    # Each message reached Postfix once: the Message-IDs it queued are exactly ours.
    assert sorted(postfix.message_ids()) == sorted(e.message_id.strip("<>") for e in emails)
    assert len(postfix.refusals()) == 1
    assert sorted(e.attempts for e in emails) == [1] * (RECIPIENTS - 1) + [2]
    sent_at = sorted(e.sent_at for e in emails)
    busiest = max(sum(1 for t in sent_at if start <= t < start + timedelta(seconds=60)) for start in sent_at)
    assert busiest <= LIMIT
    assert "TLS connection established" in postfix.log()
    assert sent_at[-1] - sent_at[0] < timedelta(seconds=90)
    assert timezone.now() - sent_at[-1] < timedelta(seconds=30)
