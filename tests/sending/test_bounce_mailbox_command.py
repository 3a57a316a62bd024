"""`manage.py bounce_mailbox`: staff script an account's bounce mailbox; the password comes from stdin only."""

import os
import subprocess
import sys
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.test import override_settings

from sending.models import BounceMailbox
from tests.dovecot import start_dovecot
from tests.e2e.test_worker_sends_campaign import database_url_for_subprocesses
from tests.factories import SmtpAccountFactory

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[2]


def run(*args, stdin="pa55word\n"):
    out = StringIO()
    call_command("bounce_mailbox", *[str(a) for a in args], stdin=StringIO(stdin), stdout=out)
    return out.getvalue()


def options(account, **overrides):
    values = {
        "protocol": "imap",
        "host": "imap.example.com",
        "port": 993,
        "security": "ssl",
        "username": "bounces@example.com",
        **overrides,
    }
    args = [account.pk]
    for name, value in values.items():
        args += [f"--{name}", value]
    return [*args, "--password-stdin"]


def test_it_saves_the_mailbox_with_the_password_from_stdin_encrypted():
    account = SmtpAccountFactory()

    out = run(*options(account, folder="INBOX/Bounces"))

    mailbox = BounceMailbox.objects.get(account=account)
    assert (mailbox.protocol, mailbox.host, mailbox.port, mailbox.security, mailbox.folder, mailbox.enabled) == (
        "imap",
        "imap.example.com",
        993,
        "ssl",
        "INBOX/Bounces",
        True,
    )
    assert mailbox.get_password() == "pa55word" and "pa55word" not in mailbox.password
    assert f"SMTP account {account.pk}" in out and "pa55word" not in out


def test_running_it_again_replaces_the_settings_and_keeps_the_history():
    account = SmtpAccountFactory()
    run(*options(account))
    BounceMailbox.objects.filter(account=account).update(processed_count=12)

    run(*options(account, protocol="pop3", port=995), "--disabled", stdin="new-one\n")

    mailbox = BounceMailbox.objects.get(account=account)
    assert (mailbox.protocol, mailbox.port, mailbox.enabled, mailbox.processed_count) == ("pop3", 995, False, 12)
    assert mailbox.get_password() == "new-one"


@pytest.mark.parametrize(
    "overrides,error",
    [
        ({"protocol": "smtp"}, "argument --protocol: invalid choice: 'smtp'"),
        ({"security": "none"}, "argument --security: invalid choice: 'none'"),
        ({"port": "imaps"}, "argument --port: invalid int value: 'imaps'"),
        ({"port": 70000}, "port: Ensure this value is less than or equal to 65535."),
        ({"port": 8080}, "port: Port 8080 is not allowed for a mailbox; use one of 110, 143, 993, 995."),
        ({"folder": "Boîte"}, "folder: Use the folder's IMAP name in printable ASCII"),
        ({"host": ""}, "host: This field cannot be blank."),
    ],
)
def test_bad_input_is_refused_with_its_reason_and_nothing_is_saved(overrides, error):
    account = SmtpAccountFactory()
    with override_settings(SMTP_ALLOW_PRIVATE_HOSTS=False):
        with pytest.raises(CommandError, match=error):
            run(*options(account, **overrides))
    assert not BounceMailbox.objects.filter(account=account).exists()


def test_an_account_of_nobody_is_refused():
    with pytest.raises(CommandError, match="There is no SMTP account with id 987654."):
        run(987654, "--protocol", "imap", "--host", "h", "--port", 993, "--security", "ssl", "--username", "u")


def test_the_password_comes_from_stdin_only():
    account = SmtpAccountFactory()
    args = options(account)[:-1]  # without --password-stdin
    with pytest.raises(CommandError, match="pass --password-stdin"):
        run(*args)
    with pytest.raises(CommandError, match="unrecognized arguments: --password"):
        run(*args, "--password", "on-the-command-line")
    with pytest.raises(CommandError, match="No password on standard input."):
        run(*options(account), stdin="")
    assert not BounceMailbox.objects.filter(account=account).exists()


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_from_a_shell_with_the_password_piped_in_and_tested_against_dovecot():
    """The real command line (a process of its own, the password on its stdin) against a real Dovecot."""
    dovecot = start_dovecot()
    try:
        account = SmtpAccountFactory()
        dovecot.deliver(b"Subject: a bounce\r\n\r\nbody\r\n")
        env = {
            **os.environ,
            "DATABASE_URL": database_url_for_subprocesses(application_name="bounce_mailbox_command"),
            "SMTP_CA_FILE": str(dovecot.cert_file),
            "SMTP_ALLOW_PRIVATE_HOSTS": "1",
        }
        args = options(account, host=dovecot.host, port=dovecot.pop3s_port, protocol="pop3", username=dovecot.username)
        done = subprocess.run(
            [sys.executable, "manage.py", "bounce_mailbox", *[str(a) for a in args], "--test"],
            input=dovecot.password + "\n",
            capture_output=True,
            text=True,
            cwd=ROOT,
            env=env,
            timeout=120,
        )
    finally:
        dovecot.stop()

    assert done.returncode == 0, done.stderr
    assert "Test: Logged in; 1 message(s) waiting in the inbox." in done.stdout
    assert dovecot.password not in done.stdout + done.stderr
    assert BounceMailbox.objects.get(account=account).get_password() == dovecot.password
