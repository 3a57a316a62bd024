"""SmtpAccount's move from accounts to sending (sending 0001, campaigns 0023, contacts 0002, accounts 0005): the table,
its rows and the foreign keys to them stay; its content type is relabelled, so the Marketers group's
permissions and the admin's log entries stay attached to it.

The engine's state moving to a row of its own (sending 0005, 0006): every account's values are copied,
and every account inserted afterwards, however, has its state row."""

from datetime import UTC, datetime

import pytest
from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.auth.models import Group
from django.contrib.contenttypes.models import ContentType
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from accounts.models import MARKETERS_GROUP, User
from campaigns.models import Campaign
from contacts.models import SubscriptionForm
from sending.models import SmtpAccount, SmtpAccountState
from tests.factories import MarketerFactory

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
    assert (moved.owner_id, moved.name, moved.password, moved.state.learned_per_minute) == (
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


# --- sending 0005, 0006: the engine's state in a row of its own ----------------------------------------

BEFORE_THE_STATE_ROW = [("sending", "0004_bounce_mailbox")]
T0 = datetime(2026, 3, 1, 9, 30, tzinfo=UTC)
# Every engine field of the account row as a worker left it: learned rate, pacing clock, pause,
# outage, last test.
ENGINE_VALUES = {
    "learned_per_minute": 28.5,
    "observed_limit_per_minute": 30,
    "rate_note": "Throttled: sending at 28/min.",
    "rate_changed_at": T0,
    "last_throttled_at": T0,
    "next_send_at": T0.replace(minute=31),
    "paused_until": T0.replace(hour=10),
    "pause_reason": "552 quota exceeded",
    "backoff_seconds": 120,
    "backoff_until": T0.replace(minute=32),
    "unreachable_since": T0.replace(minute=20),
    "last_connection_error": "Connection refused",
    "last_connection_error_at": T0.replace(minute=29),
    "last_tested_at": T0.replace(hour=8),
    "last_test_result": "OK: 235 2.7.0 Authentication successful",
}


def state_values(account_id):
    return SmtpAccountState.objects.values(*ENGINE_VALUES).get(account_id=account_id)


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_the_state_row_takes_every_accounts_engine_values_and_gives_them_back_when_reversed():
    executor = MigrationExecutor(connection)
    latest = executor.loader.graph.leaf_nodes()
    owner = MarketerFactory(username="before-the-state-row")
    try:
        executor.migrate(BEFORE_THE_STATE_ROW)
        old = (
            MigrationExecutor(connection)
            .loader.project_state(BEFORE_THE_STATE_ROW)
            .apps.get_model("sending", "SmtpAccount")
        )
        busy = old.objects.create(owner_id=owner.pk, name="Busy", host="h", from_email="a@example.org", **ENGINE_VALUES)
        idle = old.objects.create(owner_id=owner.pk, name="Idle", host="h", from_email="b@example.org")
        paused_at = old.objects.values_list("updated_at", flat=True).get(pk=busy.pk)
    finally:
        MigrationExecutor(connection).migrate(latest)

    assert state_values(busy.pk) == ENGINE_VALUES
    # The pause's start: the account row's last change, which the pause used to make.
    assert SmtpAccountState.objects.get(account_id=busy.pk).paused_at == paused_at
    idle_state = SmtpAccountState.objects.get(account_id=idle.pk)
    assert (idle_state.learned_per_minute, idle_state.paused_until, idle_state.paused_at) == (None, None, None)
    assert (idle_state.backoff_seconds, idle_state.rate_note, idle_state.last_test_result) == (0, "", "")
    assert not {field.name for field in SmtpAccount._meta.get_fields()} & set(ENGINE_VALUES)

    try:
        MigrationExecutor(connection).migrate(BEFORE_THE_STATE_ROW)
        old = (
            MigrationExecutor(connection)
            .loader.project_state(BEFORE_THE_STATE_ROW)
            .apps.get_model("sending", "SmtpAccount")
        )
        assert old.objects.values(*ENGINE_VALUES).get(pk=busy.pk) == ENGINE_VALUES
        assert old.objects.values_list("backoff_seconds", "pause_reason").get(pk=idle.pk) == (0, "")
    finally:
        MigrationExecutor(connection).migrate(latest)
    assert state_values(busy.pk) == ENGINE_VALUES


@pytest.mark.django_db
def test_every_account_has_its_state_row_however_it_is_inserted(marketer):
    made = SmtpAccount.objects.create(owner=marketer, name="Made", host="h", from_email="a@example.org")
    (bulk,) = SmtpAccount.objects.bulk_create(
        [SmtpAccount(owner=marketer, name="Bulk", host="h", from_email="b@example.org")]
    )
    # A copy of the first in plain SQL, every column but the id and the name.
    columns = ", ".join(f.column for f in SmtpAccount._meta.concrete_fields if f.name not in ("id", "name"))
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {SmtpAccount._meta.db_table} (name, {columns}) "
            f"SELECT 'Raw', {columns} FROM {SmtpAccount._meta.db_table} WHERE id = %s RETURNING id",
            [made.pk],
        )
        (raw,) = cursor.fetchone()

    for account_id in (made.pk, bulk.pk, raw):
        state = SmtpAccountState.objects.get(account_id=account_id)
        assert (state.learned_per_minute, state.paused_until, state.backoff_seconds, state.pause_reason) == (
            None,
            None,
            0,
            "",
        )
    assert SmtpAccountState.objects.count() == SmtpAccount.objects.count() == 3
    SmtpAccount.objects.filter(pk=raw).delete()
    assert not SmtpAccountState.objects.filter(account_id=raw).exists()
