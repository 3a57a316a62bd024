"""Contacts moved from the campaigns app to the contacts app in Django's state only: migrated from
before the move with data in every moved table, every row, foreign key and many-to-many link is still
there under the new models, the content types moved, and the Marketers group keeps its permissions."""

import pytest
from django.contrib.auth.models import Group, Permission
from django.contrib.contenttypes.models import ContentType
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.utils import timezone

from accounts.models import MARKETERS_GROUP
from campaigns.models import Campaign, CampaignTestSend, Email, SegmentCondition
from contacts.models import Contact, ContactList, ImportJob, SubscriptionForm, SubscriptionRequest, SuppressedHash

BEFORE_THE_MOVE = [("campaigns", "0021_campaign_test_send"), ("accounts", "0004_smtpaccount_learned_rate")]
MOVED = ["contact", "contactlist", "importjob", "suppressedhash", "subscriptionform", "subscriptionrequest"]


def make_rows_before_the_move(old):
    """One of everything the move touches, written with the historical models of before it."""
    now = timezone.now()
    owner = old.get_model("accounts", "User").objects.create(username="before-the-move")
    account = old.get_model("accounts", "SmtpAccount").objects.create(
        owner=owner, name="Main", host="smtp.example.org", from_email="news@example.org"
    )
    contact_list = old.get_model("campaigns", "ContactList").objects.create(owner=owner, name="Newsletter")
    form = old.get_model("campaigns", "SubscriptionForm").objects.create(
        owner=owner, contact_list=contact_list, smtp_account=account, title="Sign up"
    )
    contact = old.get_model("campaigns", "Contact").objects.create(
        owner=owner, email="ann@example.org", name="Ann", consent_form=form, consent_at=now
    )
    contact_list.contacts.add(contact)
    old.get_model("campaigns", "SubscriptionRequest").objects.create(
        form=form, email="ann@example.org", contact=contact, created_at=now
    )
    old.get_model("campaigns", "ImportJob").objects.create(owner=owner, contact_list=contact_list)
    old.get_model("campaigns", "SuppressedHash").objects.create(owner=owner, address_hash="f" * 64, reason="bounced")
    campaign = old.get_model("campaigns", "Campaign").objects.create(owner=owner, name="Spring", smtp_account=account)
    campaign.lists.add(contact_list)
    old.get_model("campaigns", "Email").objects.create(campaign=campaign, contact=contact, to_email="ann@example.org")
    old.get_model("campaigns", "CampaignTestSend").objects.create(
        campaign=campaign, contact=contact, addresses=["ann@example.org"], requested_at=timezone.now()
    )
    segment = old.get_model("campaigns", "Segment").objects.create(owner=owner, name="On the newsletter")
    old.get_model("campaigns", "SegmentCondition").objects.create(
        segment=segment, field="list", operator="on_list", contact_list=contact_list
    )
    return contact.pk


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_the_move_keeps_every_row_link_content_type_and_permission():
    executor = MigrationExecutor(connection)
    latest = executor.loader.graph.leaf_nodes()
    try:
        executor.migrate(BEFORE_THE_MOVE + [("sending", None), ("contacts", None)])
        old = MigrationExecutor(connection).loader.project_state(BEFORE_THE_MOVE).apps
        contact_id = make_rows_before_the_move(old)
        old_types = {ct.model: ct.pk for ct in ContentType.objects.filter(app_label="campaigns", model__in=MOVED)}
        granted_before = set(Group.objects.get(name=MARKETERS_GROUP).permissions.values_list("pk", flat=True))
    finally:
        MigrationExecutor(connection).migrate(latest)

    contact = Contact.objects.get(pk=contact_id)
    contact_list = ContactList.objects.get()
    assert list(contact_list.contacts.all()) == [contact]
    assert contact.consent_form == SubscriptionForm.objects.get() == SubscriptionRequest.objects.get().form
    assert SubscriptionRequest.objects.get().contact == contact
    assert ImportJob.objects.get().contact_list == contact_list
    assert SuppressedHash.objects.get().address_hash == "f" * 64
    assert Email.objects.get().contact == contact == CampaignTestSend.objects.get().contact
    assert list(Campaign.objects.get().lists.all()) == [contact_list]
    assert SegmentCondition.objects.get().contact_list == contact_list

    # The same content type rows, relabelled: permissions and admin log entries point at them still.
    new_types = {ct.model: ct.pk for ct in ContentType.objects.filter(app_label="contacts", model__in=MOVED)}
    assert new_types == old_types and len(new_types) == len(MOVED)
    assert not ContentType.objects.filter(app_label="campaigns", model__in=MOVED).exists()
    group = Group.objects.get(name=MARKETERS_GROUP)
    assert set(group.permissions.values_list("pk", flat=True)) == granted_before
    assert group.permissions.filter(content_type__app_label="contacts", codename="change_contact").exists()
    assert Permission.objects.filter(content_type__app_label="contacts", codename="add_importjob").exists()
