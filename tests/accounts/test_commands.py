"""The account management commands: create_marketer, setup_demo and create_admin."""

import re
import stat
import sys
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.test import Client, override_settings

from accounts.models import MARKETERS_GROUP, User
from accounts.selectors import approver_emails
from campaigns.management.commands.setup_demo import remembered_password
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


@pytest.fixture
def own_var_dir(settings, tmp_path):
    """setup_demo keeps the demo password in VAR_DIR: each test its own."""
    settings.VAR_DIR = tmp_path
    return tmp_path


@pytest.fixture
def setup_demo(own_var_dir, django_capture_on_commit_callbacks):
    """Run setup_demo as `make run` does, its on-commit work (the password file) included; return its output."""

    def run(*args):
        out = StringIO()
        with django_capture_on_commit_callbacks(execute=True):
            call_command("setup_demo", *args, stdout=out)
        return out.getvalue()

    return run


@pytest.mark.django_db
def test_setup_demo_creates_marketer_and_sink_account(client, setup_demo):
    username, password = demo_credentials(setup_demo())
    user = assert_is_working_marketer(client, username, password)

    account = SmtpAccount.objects.get(owner=user)
    assert (account.host, account.port) == ("127.0.0.1", 1025)
    assert account.security == SmtpAccount.Security.NONE
    assert account.from_email == user.email
    assert user.postal_address  # the footer needs one
    assert user.contacts.count() > 0


@pytest.mark.django_db
def test_setup_demo_keeps_the_password_in_a_file_only_its_owner_reads(setup_demo, own_var_dir):
    _, password = demo_credentials(setup_demo())
    path = own_var_dir / "demo-password"
    assert path.read_text().strip() == password
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


@pytest.mark.django_db
def test_setup_demo_run_again_changes_neither_the_password_nor_open_sessions(client, setup_demo, own_var_dir):
    _, password = demo_credentials(setup_demo())
    assert log_in(client, "demo", password).status_code == 302
    output = setup_demo()
    assert "password: unchanged" in output
    assert password not in output
    assert User.objects.filter(username="demo").count() == 1
    assert SmtpAccount.objects.filter(owner__username="demo").count() == 1
    assert client.get("/admin/").status_code == 200, "the open session was logged out"
    assert (own_var_dir / "demo-password").read_text().strip() == password
    assert remembered_password(User.objects.get(username="demo")) == password


@pytest.mark.django_db
def test_a_password_the_marketer_changed_survives_setup_demo(client, setup_demo):
    setup_demo()
    user = User.objects.get(username="demo")
    user.set_password(GOOD_PASSWORD)
    user.save()
    setup_demo()
    assert log_in(client, "demo", GOOD_PASSWORD).status_code == 302
    # The file's password no longer opens the account: nothing prints it as if it did.
    assert remembered_password(User.objects.get(username="demo")) is None


@pytest.mark.django_db
def test_reset_password_gives_a_new_one_and_ends_open_sessions(client, setup_demo, own_var_dir):
    _, old = demo_credentials(setup_demo())
    assert log_in(client, "demo", old).status_code == 302
    output = setup_demo("--reset-password")
    _, new = demo_credentials(output)
    assert new != old
    assert "open sessions are logged out" in output
    assert client.get("/admin/").status_code == 302, "the session opened with the old password still works"
    assert (own_var_dir / "demo-password").read_text().strip() == new
    assert_is_working_marketer(Client(), "demo", new)
    assert log_in(Client(), "demo", old).status_code == 200


@pytest.mark.django_db
def test_reset_password_leaves_the_sink_account_of_the_running_make_run_alone(settings, setup_demo):
    settings.SINK_PORT = 2026
    setup_demo()
    settings.SINK_PORT = 1025  # `make demo-password` in a terminal without the ports `make run` was given
    setup_demo("--reset-password")
    assert SmtpAccount.objects.get(owner__username="demo").port == 2026


@pytest.mark.django_db
def test_setup_demo_points_the_account_at_sink_port(settings, setup_demo):
    settings.SINK_PORT = 2026
    setup_demo()
    assert SmtpAccount.objects.get(owner__username="demo").port == 2026
    settings.SINK_PORT = 2027  # a later `SINK_PORT=2027 make run`
    setup_demo()
    assert SmtpAccount.objects.get(owner__username="demo").port == 2027


# --- create_admin -----------------------------------------------------------------


@pytest.mark.django_db
def test_create_admin_makes_a_superuser_who_approves_and_prints_its_password_once(client):
    out = StringIO()
    call_command("create_admin", "--email", "owner@example.in", stdout=out)
    username, password = demo_credentials(out.getvalue())
    assert username == "admin"
    user = User.objects.get(username="admin")
    assert user.is_superuser and user.is_staff and user.is_active and user.email == "owner@example.in"
    assert log_in(client, "admin", password).status_code == 302
    assert client.get("/admin/accounts/user/?approval=waiting").status_code == 200
    assert approver_emails() == ["owner@example.in"]


@pytest.mark.django_db
def test_create_admin_refuses_a_taken_username_and_says_how_to_reset_it(marketer):
    with pytest.raises(CommandError, match="changepassword alice"):
        call_command("create_admin", "--email", "x@example.in", "--username", "Alice", stdout=StringIO())
    assert not User.objects.filter(is_superuser=True).exists()


@pytest.mark.django_db
def test_create_admin_if_missing_leaves_an_existing_superuser_as_it_is():
    call_command("create_admin", "--email", "owner@example.in", stdout=StringIO())
    before = User.objects.get(username="admin").password
    out = StringIO()
    call_command("create_admin", "--if-missing", "--email", "other@example.in", stdout=out)
    assert out.getvalue().strip() == "Superuser admin exists already: unchanged."
    admin = User.objects.get(username="admin")
    assert (admin.password, admin.email) == (before, "owner@example.in")


@pytest.mark.django_db
def test_create_admin_refuses_a_bad_address_and_creates_nothing():
    with pytest.raises(CommandError, match="email: Enter a valid email address"):
        call_command("create_admin", "--email", "not an address", stdout=StringIO())
    assert not User.objects.exists()


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
