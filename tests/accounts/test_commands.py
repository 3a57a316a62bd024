"""The account management commands: create_marketer and setup_demo."""

import re
import sys
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.test import override_settings

from accounts.models import MARKETERS_GROUP, User
from sending.models import SmtpAccount

LOGIN_URL = "/admin/login/"
GOOD_PASSWORD = "saffron kettle 93 rivers"


def log_in(client, username, password):
    return client.post(LOGIN_URL, {"username": username, "password": password, "next": "/admin/"})


def assert_is_working_marketer(client, username, password):
    user = User.objects.get(username=username)
    assert user.is_staff and not user.is_superuser and user.is_active
    assert user.email_confirmed_at is not None and user.approved_at is not None
    assert list(user.groups.values_list("name", flat=True)) == [MARKETERS_GROUP]
    response = log_in(client, username, password)
    assert response.status_code == 302, "the new marketer cannot log in"
    assert response["Location"] == "/admin/"
    assert client.get("/admin/").status_code == 200
    return user


# --- create_marketer --------------------------------------------------------------


@pytest.mark.django_db
def test_create_marketer_reads_password_from_stdin(client):
    out = StringIO()
    call_command(
        "create_marketer",
        "sunita",
        "--email",
        "sunita@example.in",
        "--organization",
        "Sunita Spices",
        "--timezone",
        "Europe/London",
        "--password-stdin",
        stdin=StringIO(GOOD_PASSWORD + "\n"),
        stdout=out,
    )
    assert "Created marketer sunita <sunita@example.in>" in out.getvalue()
    assert GOOD_PASSWORD not in out.getvalue()
    assert "Password:" not in out.getvalue()
    user = assert_is_working_marketer(client, "sunita", GOOD_PASSWORD)
    assert user.email == "sunita@example.in"
    assert user.organization == "Sunita Spices"
    assert user.timezone == "Europe/London"


@pytest.mark.django_db
def test_create_marketer_defaults_to_kolkata():
    call_command(
        "create_marketer",
        "sunita",
        "--email",
        "sunita@example.in",
        "--password-stdin",
        stdin=StringIO(GOOD_PASSWORD + "\n"),
        stdout=StringIO(),
    )
    assert User.objects.get(username="sunita").timezone == "Asia/Kolkata"


@pytest.mark.django_db
def test_create_marketer_with_empty_stdin_fails():
    with pytest.raises(CommandError, match="No password"):
        call_command(
            "create_marketer",
            "sunita",
            "--email",
            "sunita@example.in",
            "--password-stdin",
            stdin=StringIO(""),
            stdout=StringIO(),
        )
    assert not User.objects.filter(username="sunita").exists()


@pytest.mark.django_db
def test_create_marketer_prints_a_generated_password_that_works(client):
    out = StringIO()
    call_command("create_marketer", "sunita", "--email", "sunita@example.in", stdout=out)
    match = re.search(r"^Password: (\S+)$", out.getvalue(), re.MULTILINE)
    assert match, out.getvalue()
    password = match.group(1)
    assert len(password) >= 12
    assert_is_working_marketer(client, "sunita", password)


@pytest.mark.django_db
@pytest.mark.parametrize("existing", ["sunita", "Sunita"])
def test_create_marketer_refuses_a_duplicate_username(existing):
    call_command(
        "create_marketer",
        existing,
        "--email",
        "first@example.in",
        "--password-stdin",
        stdin=StringIO(GOOD_PASSWORD + "\n"),
        stdout=StringIO(),
    )
    with pytest.raises(CommandError, match="exists already"):
        call_command(
            "create_marketer",
            "sunita",
            "--email",
            "second@example.in",
            "--password-stdin",
            stdin=StringIO(GOOD_PASSWORD + "\n"),
            stdout=StringIO(),
        )
    assert User.objects.filter(username__iexact="sunita").count() == 1
    assert User.objects.get(username__iexact="sunita").email == "first@example.in"


@pytest.mark.django_db
def test_create_marketer_refuses_an_unknown_timezone():
    with pytest.raises(CommandError, match="timezone"):
        call_command(
            "create_marketer",
            "sunita",
            "--email",
            "sunita@example.in",
            "--timezone",
            "Mars/Base",
            "--password-stdin",
            stdin=StringIO(GOOD_PASSWORD + "\n"),
            stdout=StringIO(),
        )
    assert not User.objects.filter(username="sunita").exists()


# --- setup_demo -------------------------------------------------------------------


def demo_credentials(output):
    username = re.search(r"username: (\S+)", output)
    password = re.search(r"password: (\S+)", output)
    assert username and password, output
    return username.group(1), password.group(1)


@pytest.mark.django_db
def test_setup_demo_creates_marketer_and_sink_account(client):
    out = StringIO()
    call_command("setup_demo", stdout=out)
    username, password = demo_credentials(out.getvalue())
    user = assert_is_working_marketer(client, username, password)

    account = SmtpAccount.objects.get(owner=user)
    assert (account.host, account.port) == ("127.0.0.1", 1025)
    assert account.security == SmtpAccount.Security.NONE
    assert account.from_email == user.email
    assert user.postal_address  # the footer needs one
    assert user.contacts.count() > 0


@pytest.mark.django_db
def test_setup_demo_run_twice_keeps_one_account_and_prints_a_working_password(client):
    call_command("setup_demo", stdout=StringIO())
    out = StringIO()
    call_command("setup_demo", stdout=out)
    username, password = demo_credentials(out.getvalue())
    assert User.objects.filter(username=username).count() == 1
    assert SmtpAccount.objects.filter(owner__username=username).count() == 1
    assert_is_working_marketer(client, username, password)


@pytest.mark.django_db
@pytest.mark.parametrize("allowed", [True, False])
def test_setup_demo_says_when_the_destination_guard_would_refuse_its_account(allowed):
    out = StringIO()
    with override_settings(SMTP_ALLOW_PRIVATE_HOSTS=allowed):
        call_command("setup_demo", stdout=out)
    assert ("start the processes with SMTP_ALLOW_PRIVATE_HOSTS=1" in out.getvalue()) is not allowed


@pytest.mark.django_db
@override_settings(PRODUCTION=True)
def test_setup_demo_refuses_in_production():
    with pytest.raises(CommandError, match="development only"):
        call_command("setup_demo", stdout=StringIO())
    assert not User.objects.exists()
    assert not SmtpAccount.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    "password, message",
    [
        ("short", "This password is too short. It must contain at least 8 characters."),
        ("password123", "This password is too common."),
        ("83749202938", "This password is entirely numeric."),
        ("sunita-kapoor", "The password is too similar to the username."),
    ],
)
def test_create_marketer_refuses_a_password_the_sign_up_validators_refuse(password, message):
    with pytest.raises(CommandError) as raised:
        call_command(
            "create_marketer",
            "sunita-kapoor",
            "--email",
            "sunita@example.in",
            "--password-stdin",
            stdin=StringIO(password + "\n"),
            stdout=StringIO(),
        )
    assert f"password: {message}" in str(raised.value)
    assert not User.objects.filter(username="sunita-kapoor").exists()


# Transactional: the command line closes every connection when it ends, which a test's atomic block forbids.
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_create_marketer_with_a_weak_password_exits_non_zero_with_the_messages(monkeypatch, capsys):
    from django.core.management import execute_from_command_line

    monkeypatch.setattr(sys, "stdin", StringIO("12345678\n"))
    with pytest.raises(SystemExit) as exited:
        execute_from_command_line(
            ["manage.py", "create_marketer", "sunita", "--email", "sunita@example.in", "--password-stdin"]
        )
    assert exited.value.code == 1
    captured = capsys.readouterr()
    assert "This password is too common." in captured.err and "This password is entirely numeric." in captured.err
    assert "Created" not in captured.out
    assert not User.objects.filter(username="sunita").exists()
