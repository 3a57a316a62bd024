"""SmtpAccount's move from accounts to sending (sending 0001, campaigns 0023, contacts 0002, accounts 0005): the table,
its rows and the foreign keys to them stay; its content type is relabelled, so the Marketers group's
permissions and the admin's log entries stay attached to it."""

import pytest
from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.auth.models import Group
from django.contrib.contenttypes.models import ContentType
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from accounts.models import MARKETERS_GROUP, User
from campaigns.models import Campaign
from contacts.models import SubscriptionForm
from sending.models import SmtpAccount

BEFORE_THE_MOVE = [("accounts", "0004_smtpaccount_learned_rate"), ("campaigns", "0021_campaign_test_send")]
ADMIN_LOG = ("admin", "0003_logentry_add_action_flag_choices")
SMTP_ACCOUNT_PERMISSIONS = {"view_smtpaccount", "add_smtpaccount", "change_smtpaccount", "delete_smtpaccount"}


def marketers_smtp_account_permissions():
    return set(
        Group.objects.get(name=MARKETERS_GROUP)
        .permissions.filter(content_type__model="smtpaccount")
        .values_list("content_type__app_label", "codename")
    )


@pytest.mark.django_db
def test_on_a_fresh_database_marketers_may_manage_smtp_accounts_under_sending():
    assert marketers_smtp_account_permissions() == {("sending", codename) for codename in SMTP_ACCOUNT_PERMISSIONS}
    assert not ContentType.objects.filter(app_label="accounts", model="smtpaccount").exists()


# serialized_rollback: like every test here that commits, so the Marketers group and the lock row (data
# migrations) come back after the flush, for this test and the next.
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_moving_smtp_accounts_to_sending_keeps_rows_foreign_keys_permissions_and_log_entries():
    executor = MigrationExecutor(connection)
    latest = executor.loader.graph.leaf_nodes()
    try:
        executor.migrate([*BEFORE_THE_MOVE, ("sending", None), ("contacts", None)])
        old = MigrationExecutor(connection).loader.project_state([*BEFORE_THE_MOVE, ADMIN_LOG]).apps
        owner = old.get_model("accounts", "User").objects.create(username="before-the-move", is_staff=True)
        owner.groups.add(old.get_model("auth", "Group").objects.get(name=MARKETERS_GROUP))
        account = old.get_model("accounts", "SmtpAccount").objects.create(
            owner=owner,
            name="Relay",
            host="smtp.example.org",
            from_email="news@example.org",
            password="a Fernet token",
            learned_per_minute=570.0,
        )
        campaign = old.get_model("campaigns", "Campaign").objects.create(
            owner=owner, name="Spring", smtp_account=account
        )
        contact_list = old.get_model("campaigns", "ContactList").objects.create(owner=owner, name="Readers")
        form = old.get_model("campaigns", "SubscriptionForm").objects.create(
            owner=owner,
            contact_list=contact_list,
            smtp_account=account,
            title="Sign up",
            consent_text="Yes",
        )
        old_content_type = old.get_model("contenttypes", "ContentType").objects.get(
            app_label="accounts", model="smtpaccount"
        )
        entry = old.get_model("admin", "LogEntry").objects.create(
            user=owner,
            content_type=old_content_type,
            object_id=str(account.pk),
            object_repr="Relay",
            action_flag=CHANGE,
        )
    finally:
        MigrationExecutor(connection).migrate(latest)
    ContentType.objects.clear_cache()

    moved = SmtpAccount.objects.get(pk=account.pk)
    assert (moved.owner_id, moved.name, moved.password, moved.learned_per_minute) == (
        owner.pk,
        "Relay",
        "a Fernet token",
        570.0,
    )
    assert Campaign.objects.get(pk=campaign.pk).smtp_account == moved
    assert SubscriptionForm.objects.get(pk=form.pk).smtp_account == moved

    content_type = ContentType.objects.get_for_model(SmtpAccount)
    assert (content_type.pk, content_type.app_label) == (old_content_type.pk, "sending")
    assert not ContentType.objects.filter(app_label="accounts", model="smtpaccount").exists()
    assert LogEntry.objects.get(pk=entry.pk).get_edited_object() == moved

    assert marketers_smtp_account_permissions() == {("sending", codename) for codename in SMTP_ACCOUNT_PERMISSIONS}
    marketer = User.objects.get(pk=owner.pk)
    assert all(marketer.has_perm(f"sending.{codename}") for codename in SMTP_ACCOUNT_PERMISSIONS)
