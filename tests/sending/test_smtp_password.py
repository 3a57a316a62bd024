"""SMTP passwords at rest: encrypted, write-only in the admin, rotatable to a new key."""

import base64
from io import StringIO

import pytest
from cryptography.fernet import Fernet, InvalidToken
from django.conf import settings
from django.core.management import CommandError, call_command
from django.db import connection
from django.test import override_settings
from django.urls import reverse

from sending import crypto
from sending.models import SmtpAccount
from tests.factories import SmtpAccountFactory
from tests.sending.account_forms import NO_BOUNCE_MAILBOX

SECRET = "s3cret-Pässword!<&>\"'"


def raw_password_column(account):
    """The password column exactly as stored, read past the ORM."""
    table = connection.ops.quote_name(SmtpAccount._meta.db_table)
    column = connection.ops.quote_name("password")
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {column} FROM {table} WHERE id = %s", [account.pk])
        (value,) = cursor.fetchone()
    return value


def assert_fernet_token(value):
    # A Fernet token is urlsafe base64 of: version byte 0x80, 8-byte timestamp, 16-byte IV, ciphertext, 32-byte HMAC.
    decoded = base64.urlsafe_b64decode(value.encode())
    assert decoded[0] == 0x80
    assert len(decoded) >= 1 + 8 + 16 + 16 + 32


def new_key():
    return Fernet.generate_key().decode()


# --- at rest ---------------------------------------------------------------------------------


def test_password_column_holds_a_fernet_token_not_the_password(marketer):
    account = SmtpAccountFactory(owner=marketer, raw_password=SECRET)

    stored = raw_password_column(account)

    assert stored
    assert SECRET not in stored
    assert SECRET.encode() not in stored.encode()
    assert_fernet_token(stored)
    # It is the configured key that encrypted it, read with cryptography alone.
    assert Fernet(settings.FIELD_ENCRYPTION_KEYS[0].encode()).decrypt(stored.encode()).decode() == SECRET


def test_same_password_twice_gives_different_tokens(marketer):
    first = SmtpAccountFactory(owner=marketer, raw_password=SECRET)
    second = SmtpAccountFactory(owner=marketer, raw_password=SECRET)

    assert raw_password_column(first) != raw_password_column(second)


def test_get_password_round_trips_through_the_database(marketer):
    account = SmtpAccountFactory(owner=marketer, raw_password=SECRET)

    assert SmtpAccount.objects.get(pk=account.pk).get_password() == SECRET


def test_blank_password_is_stored_blank(marketer):
    account = SmtpAccountFactory(owner=marketer, raw_password="")

    assert raw_password_column(account) == ""
    assert SmtpAccount.objects.get(pk=account.pk).get_password() == ""
    assert not account.has_password


# --- the admin form is write-only ---------------------------------------------------------------


def change_url(account):
    return reverse("admin:sending_smtpaccount_change", args=[account.pk])


def form_data(account, **overrides):
    data = {
        "name": account.name,
        "from_name": account.from_name,
        "from_email": account.from_email,
        "reply_to": account.reply_to,
        "host": account.host,
        "port": account.port,
        "security": account.security,
        "username": account.username,
        "new_password": "",
        "max_per_minute": account.max_per_minute,
        "max_per_hour": account.max_per_hour,
        "max_per_day": account.max_per_day,
        "batch_size": account.batch_size,
        **NO_BOUNCE_MAILBOX,
    }
    data.update(overrides)
    return data


def test_change_form_never_renders_the_stored_password(marketer, marketer_client):
    account = SmtpAccountFactory(owner=marketer, raw_password=SECRET)
    token = raw_password_column(account)

    response = marketer_client.get(change_url(account))

    assert response.status_code == 200
    html = response.content.decode()
    assert 'name="new_password"' in html
    assert "A password is stored" in html
    for leaked in (SECRET, token):
        assert leaked not in html
    # Not even HTML-escaped.
    assert "s3cret-P" not in html


def test_change_form_with_errors_does_not_echo_a_typed_password(marketer, marketer_client):
    account = SmtpAccountFactory(owner=marketer, raw_password="old-one")

    response = marketer_client.post(change_url(account), form_data(account, new_password=SECRET, port="0"))

    assert response.status_code == 200  # re-rendered with the port error
    assert response.context["adminform"].form.errors.get("port")
    assert "s3cret-P" not in response.content.decode()
    account.refresh_from_db()
    assert account.get_password() == "old-one"


def test_saving_with_a_blank_password_keeps_the_stored_one(marketer, marketer_client):
    account = SmtpAccountFactory(owner=marketer, raw_password=SECRET)
    token_before = raw_password_column(account)

    response = marketer_client.post(change_url(account), form_data(account, name="Renamed", new_password=""))

    assert response.status_code == 302, response.context and response.context["adminform"].form.errors
    account.refresh_from_db()
    assert account.name == "Renamed"
    assert raw_password_column(account) == token_before
    assert account.get_password() == SECRET


def test_saving_with_a_new_password_replaces_it(marketer, marketer_client):
    account = SmtpAccountFactory(owner=marketer, raw_password=SECRET)
    token_before = raw_password_column(account)

    response = marketer_client.post(change_url(account), form_data(account, new_password="  brand new pw  "))

    assert response.status_code == 302
    account.refresh_from_db()
    stored = raw_password_column(account)
    assert stored != token_before
    assert "brand new pw" not in stored
    assert_fernet_token(stored)
    # Passwords are taken as typed: spaces are part of them.
    assert account.get_password() == "  brand new pw  "


def test_clear_password_removes_it(marketer, marketer_client):
    account = SmtpAccountFactory(owner=marketer, raw_password=SECRET)

    response = marketer_client.post(change_url(account), form_data(account, clear_password="on"))

    assert response.status_code == 302
    account.refresh_from_db()
    assert raw_password_column(account) == ""
    assert not account.has_password


def test_posting_the_raw_column_cannot_overwrite_it(marketer, marketer_client):
    account = SmtpAccountFactory(owner=marketer, raw_password=SECRET)
    token_before = raw_password_column(account)

    response = marketer_client.post(change_url(account), form_data(account, password="plain-text-injected"))

    assert response.status_code == 302
    assert raw_password_column(account) == token_before


def test_add_form_encrypts_the_typed_password(marketer, marketer_client):
    data = form_data(
        SmtpAccount(
            name="Fresh",
            host="smtp.example.com",
            port=587,
            security="starttls",
            username="u",
            from_email="alice@example.com",
        ),
        new_password=SECRET,
    )

    response = marketer_client.post(reverse("admin:sending_smtpaccount_add"), data)

    assert response.status_code == 302, response.context and response.context["adminform"].form.errors
    account = SmtpAccount.objects.get(owner=marketer, name="Fresh")
    assert SECRET not in raw_password_column(account)
    assert account.get_password() == SECRET


# --- key rotation --------------------------------------------------------------------------------


def test_rotate_encryption_keys_re_encrypts_every_row_so_the_old_key_can_go(marketer):
    old_key, newest_key = new_key(), new_key()
    with override_settings(FIELD_ENCRYPTION_KEYS=[old_key]):
        first = SmtpAccountFactory(owner=marketer, name="a", raw_password="first-secret")
        second = SmtpAccountFactory(owner=marketer, name="b", raw_password="second-secret")
        without = SmtpAccountFactory(owner=marketer, name="c", raw_password="")
    before = {a.pk: raw_password_column(a) for a in (first, second)}

    out = StringIO()
    with override_settings(FIELD_ENCRYPTION_KEYS=[newest_key, old_key]):
        call_command("rotate_encryption_keys", stdout=out)
    assert "Re-encrypted 2 secret(s)" in out.getvalue()

    assert raw_password_column(without) == ""
    for account in (first, second):
        stored = raw_password_column(account)
        assert stored != before[account.pk]
        Fernet(newest_key.encode()).decrypt(stored.encode())
        with pytest.raises(InvalidToken):
            Fernet(old_key.encode()).decrypt(stored.encode())

    # The old key is dropped: every password still reads.
    with override_settings(FIELD_ENCRYPTION_KEYS=[newest_key]):
        assert SmtpAccount.objects.get(pk=first.pk).get_password() == "first-secret"
        assert SmtpAccount.objects.get(pk=second.pk).get_password() == "second-secret"


def test_setting_change_clears_the_cached_keys():
    one, other = new_key(), new_key()
    with override_settings(FIELD_ENCRYPTION_KEYS=[one]):
        token = crypto.encrypt("x")
    with override_settings(FIELD_ENCRYPTION_KEYS=[other]):
        with pytest.raises(crypto.DecryptionError):
            crypto.decrypt(token)
    with override_settings(FIELD_ENCRYPTION_KEYS=[one]):
        assert crypto.decrypt(token) == "x"


def test_with_a_wrong_key_get_password_raises_a_clear_decryption_error(marketer):
    with override_settings(FIELD_ENCRYPTION_KEYS=[new_key()]):
        account = SmtpAccountFactory(owner=marketer, raw_password=SECRET)

    with override_settings(FIELD_ENCRYPTION_KEYS=[new_key()]):
        with pytest.raises(crypto.DecryptionError) as excinfo:
            SmtpAccount.objects.get(pk=account.pk).get_password()

    message = str(excinfo.value)
    assert "FIELD_ENCRYPTION_KEYS" in message
    assert "key it was encrypted with is missing" in message
    assert SECRET not in message


def test_with_a_wrong_key_rotation_fails_and_changes_nothing(marketer):
    with override_settings(FIELD_ENCRYPTION_KEYS=[new_key()]):
        account = SmtpAccountFactory(owner=marketer, raw_password=SECRET)
    before = raw_password_column(account)

    with override_settings(FIELD_ENCRYPTION_KEYS=[new_key()]):
        with pytest.raises(CommandError) as excinfo:
            call_command("rotate_encryption_keys", stdout=StringIO())

    assert f"SMTP account {account.pk}" in str(excinfo.value)
    assert "Nothing was changed" in str(excinfo.value)
    assert raw_password_column(account) == before


def test_rotation_is_all_or_nothing_when_one_row_cannot_be_read(marketer):
    old_key, lost_key, newest_key = new_key(), new_key(), new_key()
    with override_settings(FIELD_ENCRYPTION_KEYS=[old_key]):
        readable = SmtpAccountFactory(owner=marketer, name="a-readable", raw_password="readable")
    with override_settings(FIELD_ENCRYPTION_KEYS=[lost_key]):
        unreadable = SmtpAccountFactory(owner=marketer, name="b-unreadable", raw_password="lost")
    before = {a.pk: raw_password_column(a) for a in (readable, unreadable)}
    # Rows are visited in name order, so the readable one is rewritten before the failure.
    assert list(SmtpAccount.objects.values_list("pk", flat=True)) == [readable.pk, unreadable.pk]

    with override_settings(FIELD_ENCRYPTION_KEYS=[newest_key, old_key]):
        with pytest.raises(CommandError) as excinfo:
            call_command("rotate_encryption_keys", stdout=StringIO())

    assert f"SMTP account {unreadable.pk}" in str(excinfo.value)
    # The readable row was rewritten inside the transaction, then rolled back with it.
    assert {a.pk: raw_password_column(a) for a in (readable, unreadable)} == before
