"""campaign_cache: a worker process reuses the campaign, owner and account it loaded for earlier
batches only while nothing that matters to sending has changed."""

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts.models import SmtpAccount
from campaigns.delivery import campaign_cache
from campaigns.models import Campaign, Email

S = Email.Status
FIRST, SECOND = ["a1@example.org", "a2@example.org"], ["b1@example.org", "b2@example.org"]


def _two_batches(make_engine, **campaign_fields):
    engine = make_engine(batch_size=2)
    campaign, claimed = engine.claimed_campaign(FIRST + SECOND, **campaign_fields)
    assert len(claimed) == 2
    first = engine.send_batch(claimed[0])  # loads the campaign, its owner and its account
    assert first.sent == 2
    return engine, campaign, claimed[1]


def _subjects(engine, addresses):
    return {m.rcpt_tos[0]: str(m.parsed()["Subject"]) for m in engine.handler.messages if m.rcpt_tos[0] in addresses}


def test_an_edit_saved_between_batches_reaches_the_next_batch(make_engine):
    engine, campaign, second = _two_batches(make_engine, subject="Before")
    campaign.subject = "After"
    campaign.save()  # as the admin saves it
    account = SmtpAccount.objects.get(pk=engine.account.pk)
    account.from_name = "Renamed Ltd"
    account.save()

    assert engine.send_batch(second).sent == 2

    assert set(_subjects(engine, FIRST).values()) == {"Before"}
    assert set(_subjects(engine, SECOND).values()) == {"After"}
    senders = {m.rcpt_tos[0]: str(m.parsed()["From"]) for m in engine.handler.messages}
    assert senders[SECOND[0]] == "Renamed Ltd <news@alice.example>"


@pytest.mark.parametrize("change", ["owner deactivated", "owner expired", "account paused", "campaign paused"])
def test_a_change_made_without_saving_through_the_admin_still_stops_the_next_batch(make_engine, change):
    engine, campaign, second = _two_batches(make_engine)
    owner = type(engine.owner).objects.filter(pk=engine.owner.pk)
    if change == "owner deactivated":
        owner.update(is_active=False)
    elif change == "owner expired":
        owner.update(access_expires_at=timezone.now() - timedelta(minutes=1))
    elif change == "account paused":
        SmtpAccount.objects.filter(pk=engine.account.pk).update(
            paused_until=engine.clock() + timedelta(hours=1), pause_reason="quota"
        )
    else:
        Campaign.objects.filter(pk=campaign.pk).update(status=Campaign.Status.PAUSED)

    report = engine.send_batch(second)

    assert report.sent == 0 and report.released == 2
    assert {address: engine.email(campaign, address).status for address in SECOND} == dict.fromkeys(SECOND, S.PENDING)
    assert engine.handler.delivered_to() == FIRST


def test_an_unchanged_campaign_is_read_with_one_statement(make_engine):
    engine = make_engine()
    campaign = engine.campaign(engine.contact_list("a@example.org"))
    loaded = campaign_cache.campaign_for_batch(campaign.pk)

    with CaptureQueriesContext(connection) as queries:
        again = campaign_cache.campaign_for_batch(campaign.pk)

    assert again is loaded and len(queries) == 1
    assert again.owner.pk == engine.owner.pk and again.smtp_account.pk == engine.account.pk
    SmtpAccount.objects.filter(pk=engine.account.pk).update(throttle_factor=0.5)
    reloaded = campaign_cache.campaign_for_batch(campaign.pk)
    assert reloaded is not loaded and reloaded.smtp_account.throttle_factor == 0.5


def test_a_deleted_campaign_is_forgotten(make_engine):
    engine = make_engine()
    campaign = engine.campaign(engine.contact_list("a@example.org"))
    campaign_cache.campaign_for_batch(campaign.pk)
    pk = campaign.pk
    campaign.delete()

    assert campaign_cache.campaign_for_batch(pk) is None
    assert pk not in campaign_cache._loaded
