"""campaign_loader: every batch reads its campaigns, owners and accounts fresh, in one statement,
built exactly as the ORM builds them; whatever changed reaches the next batch."""

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from campaigns.models import Campaign, Email
from delivery.campaign_loader import campaigns_with_owner_and_account
from sending.models import SmtpAccount, SmtpAccountState

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
        SmtpAccountState.objects.filter(account_id=engine.account.pk).update(
            paused_until=engine.clock() + timedelta(hours=1), pause_reason="quota"
        )
    else:
        Campaign.objects.filter(pk=campaign.pk).update(status=Campaign.Status.PAUSED)

    report = engine.send_batch(second)

    assert report.sent == 0 and report.released == 2
    assert {address: engine.email(campaign, address).status for address in SECOND} == dict.fromkeys(SECOND, S.PENDING)
    assert sorted(engine.handler.delivered_to()) == FIRST  # (rows are sent in id order, not address order)


def test_the_batchs_campaigns_are_read_with_one_statement_and_built_as_the_orm_builds_them(make_engine):
    engine = make_engine()
    first = engine.campaign(engine.contact_list("a@example.org"), subject="One")
    second = engine.campaign(engine.contact_list("b@example.org"), subject="Two")
    Campaign.objects.filter(pk=second.pk).update(smtp_account=None)

    with CaptureQueriesContext(connection) as queries:
        loaded = campaigns_with_owner_and_account([first.pk, second.pk, first.pk])

    assert len(queries) == 1 and set(loaded) == {first.pk, second.pk}
    for pk, campaign in loaded.items():
        orm = Campaign.objects.select_related("owner", "smtp_account").get(pk=pk)
        for model_instance, orm_instance in [(campaign, orm), (campaign.owner, orm.owner)] + (
            [(campaign.smtp_account, orm.smtp_account)] if orm.smtp_account else []
        ):
            for field in type(orm_instance)._meta.concrete_fields:
                assert getattr(model_instance, field.attname) == getattr(orm_instance, field.attname), field.name
    assert loaded[second.pk].smtp_account is None
    assert loaded[first.pk].smtp_account.get_password() == engine.account.get_password()  # decrypted as stored
    assert loaded[first.pk].owner.has_access


def test_a_deleted_campaign_is_absent(make_engine):
    engine = make_engine()
    campaign = engine.campaign(engine.contact_list("a@example.org"))
    pk = campaign.pk
    campaign.delete()

    assert campaigns_with_owner_and_account([pk]) == {}
