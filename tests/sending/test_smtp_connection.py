"""'Test connection' against a real SMTP server (aiosmtpd) in the test process.

Plain, STARTTLS with authentication, implicit TLS, certificate verification,
refused connections; through sending.smtp and through the admin action.
"""

import socket
import threading
from datetime import timedelta

import pytest
from cryptography.fernet import Fernet
from django.contrib import messages
from django.test import override_settings
from django.urls import reverse
from django.utils import timezone

from sending import selectors, services, smtp, tasks
from sending.models import SmtpAccount, SmtpAccountState
from tests.conftest import free_port, queued_tasks
from tests.factories import SmtpAccountFactory
from tests.smtp_server import (  # noqa: F401  (pytest fixtures)
    RawSmtpServer,
    RecordingHandler,
    flood_lines,
    smtp_server_factory,
    stall,
    tls_files,
    trickle_bytes,
    trickle_continuation_lines,
)

LOGIN = "alice@example.com"
PASSWORD = "mail-pass-42"
AUTH_OK = "235 2.7.0 Authentication successful"
AUTH_INVALID = "535 5.7.8 Authentication credentials invalid"


@pytest.fixture(autouse=True)
def development_destinations():
    # The servers listen on 127.0.0.1 and an unprivileged port.
    with override_settings(SMTP_ALLOW_PRIVATE_HOSTS=True, SMTP_CA_FILE="", SMTP_TIMEOUT=10):
        yield


@pytest.fixture
def trust_test_ca(tls_files):
    with override_settings(SMTP_CA_FILE=str(tls_files.ca_file)):
        yield tls_files


def make_account(owner, server, **fields):
    values = {"name": "Test server", "host": server.host, "port": server.port, "security": "none", "username": ""}
    values.update(fields)
    return SmtpAccountFactory(owner=owner, **values)


def login_account(owner, server, password, *, security="starttls", **fields):
    """An account that logs in as LOGIN over TLS to `server`, addressed as "localhost" (the certificate's name)."""
    account = make_account(owner, server, host="localhost", security=security, username=LOGIN, **fields)
    account.set_password(password)
    account.save()
    return SmtpAccount.objects.get(pk=account.pk)


def run_test_connection_action(client, *accounts):
    """The admin action, then the worker's task for each account (here, in this process): each
    account's recorded result as (level, "name: message")."""
    response = client.post(
        reverse("admin:sending_smtpaccount_changelist"),
        {"action": "test_connection", "_selected_action": [a.pk for a in accounts]},
        follow=True,
    )
    assert response.status_code == 200
    ((level, text),) = [(m.level, m.message) for m in response.context["messages"]]
    assert level == messages.INFO and text.startswith("Testing the connection of ")
    for account in accounts:
        assert SmtpAccountState.objects.get(account=account).last_test_result == "Testing…"
        tasks.connection_test(account.pk)
    reported = []
    for account in SmtpAccount.objects.filter(pk__in=[a.pk for a in accounts]).select_related("state").order_by("pk"):
        outcome, message = account.state.last_test_result.split(": ", 1)
        reported.append((messages.SUCCESS if outcome == "OK" else messages.ERROR, f"{account.name}: {message}"))
    return reported


# --- (a) plain, no authentication -----------------------------------------------------------------


def test_plain_without_auth_reports_the_servers_exact_reply(marketer, smtp_server_factory):
    server = smtp_server_factory(RecordingHandler(noop_reply="250 2.0.0 Sink ready for alice"))
    account = make_account(marketer, server)

    result = smtp.test_connection(account)

    assert result == smtp.TestResult(True, "250 2.0.0 Sink ready for alice")
    assert server.handler.connections == 1
    assert server.handler.logins == []


def test_plain_without_auth_a_refusing_server_is_no_success(marketer, smtp_server_factory):
    server = smtp_server_factory(RecordingHandler(noop_reply="421 4.3.2 Service shutting down"))
    account = make_account(marketer, server)

    result = smtp.test_connection(account)

    assert result == smtp.TestResult(False, "421 4.3.2 Service shutting down")


def test_plain_without_auth_through_the_admin_action(marketer, marketer_client, smtp_server_factory):
    server = smtp_server_factory(RecordingHandler(noop_reply="250 2.0.0 Sink ready"))
    account = make_account(marketer, server, name="Local sink")

    reported = run_test_connection_action(marketer_client, account)

    assert reported == [(messages.SUCCESS, "Local sink: 250 2.0.0 Sink ready")]
    assert server.handler.connections == 1


def test_open_connection_gives_a_connection_that_sends(marketer, smtp_server_factory):
    handler = RecordingHandler(rcpt_replies={"full@example.org": (452, "4.2.2 Mailbox full")})
    server = smtp_server_factory(handler)
    account = make_account(marketer, server)

    conn, _reply = smtp.open_connection(account)
    try:
        refused = conn.sendmail(
            "alice@example.com", ["bob@example.org", "full@example.org"], b"Subject: hi\r\n\r\nHello\r\n"
        )
    finally:
        conn.quit()

    assert refused == {"full@example.org": (452, b"4.2.2 Mailbox full")}
    handler.wait_for(lambda h: len(h.messages) == 1)
    assert handler.messages[0].rcpt_tos == ["bob@example.org"]
    assert handler.messages[0].parsed()["Subject"] == "hi"


# --- (b) STARTTLS with authentication --------------------------------------------------------------


@pytest.fixture
def starttls_server(smtp_server_factory, tls_files):
    return smtp_server_factory(RecordingHandler(users={LOGIN: PASSWORD}), tls=tls_files, auth=True)


def test_starttls_with_the_right_password_reports_the_exact_235(marketer, starttls_server, trust_test_ca):
    account = login_account(marketer, starttls_server, PASSWORD)

    result = smtp.test_connection(account)

    assert result == smtp.TestResult(True, AUTH_OK)
    assert [(a.login, a.success) for a in starttls_server.handler.logins] == [(LOGIN, True)]


def test_starttls_with_a_wrong_password_reports_the_exact_535(marketer, starttls_server, trust_test_ca):
    account = login_account(marketer, starttls_server, "not-the-password")

    result = smtp.test_connection(account)

    assert result == smtp.TestResult(False, AUTH_INVALID)
    assert starttls_server.handler.logins and not any(a.success for a in starttls_server.handler.logins)


def test_starttls_through_the_admin_action(marketer, marketer_client, starttls_server, trust_test_ca):
    good = login_account(marketer, starttls_server, PASSWORD, name="Good")
    bad = login_account(marketer, starttls_server, "wrong", name="Bad")

    reported = run_test_connection_action(marketer_client, good, bad)

    assert sorted(reported) == sorted(
        [(messages.SUCCESS, f"Good: {AUTH_OK}"), (messages.ERROR, f"Bad: {AUTH_INVALID}")]
    )


def test_starttls_required_but_not_offered_fails_instead_of_sending_in_clear(marketer, smtp_server_factory):
    server = smtp_server_factory(RecordingHandler(users={LOGIN: PASSWORD}), auth=True)  # no TLS at all
    account = make_account(marketer, server, security="starttls", username=LOGIN)

    result = smtp.test_connection(account)

    assert result == smtp.TestResult(
        False, "The server does not support this: STARTTLS extension not supported by server."
    )
    assert server.handler.logins == []


# --- (c) the certificate is verified --------------------------------------------------------------


def test_without_the_ca_the_certificate_is_refused(marketer, starttls_server):
    account = login_account(marketer, starttls_server, PASSWORD)

    result = smtp.test_connection(account)  # SMTP_CA_FILE is empty: only the system's CAs

    assert not result.ok
    assert result.message == "TLS certificate verification failed: unable to get local issuer certificate"
    # The password never went to an unverified server.
    assert starttls_server.handler.logins == []


def test_a_certificate_for_another_name_is_refused(marketer, starttls_server, trust_test_ca):
    # The certificate names "localhost" only; the account says 127.0.0.1.
    account = make_account(marketer, starttls_server, host="127.0.0.1", security="starttls", username=LOGIN)
    account.set_password(PASSWORD)
    account.save()

    result = smtp.test_connection(account)

    assert not result.ok
    assert result.message.startswith("TLS certificate verification failed: ")
    assert "mismatch" in result.message or "doesn't match" in result.message
    assert starttls_server.handler.logins == []


def test_implicit_tls_without_the_ca_is_refused(marketer, smtp_server_factory, tls_files):
    server = smtp_server_factory(tls=tls_files, implicit_tls=True)
    account = make_account(marketer, server, host="localhost", security="ssl")

    result = smtp.test_connection(account)

    assert result == smtp.TestResult(
        False, "TLS certificate verification failed: unable to get local issuer certificate"
    )


# --- (d) implicit TLS ------------------------------------------------------------------------------


def test_implicit_tls_with_the_ca_and_a_login(marketer, smtp_server_factory, trust_test_ca):
    handler = RecordingHandler(users={LOGIN: PASSWORD})
    server = smtp_server_factory(handler, tls=trust_test_ca, implicit_tls=True, auth=True)
    account = login_account(marketer, server, PASSWORD, security="ssl")

    result = smtp.test_connection(account)

    assert result == smtp.TestResult(True, AUTH_OK)
    assert [(a.login, a.success) for a in server.handler.logins] == [(LOGIN, True)]


def test_implicit_tls_without_auth_through_the_admin_action(
    marketer, marketer_client, smtp_server_factory, trust_test_ca
):
    handler = RecordingHandler(noop_reply="250 2.0.0 TLS sink ready")
    server = smtp_server_factory(handler, tls=trust_test_ca, implicit_tls=True)
    account = make_account(marketer, server, name="TLS sink", host="localhost", security="ssl")

    reported = run_test_connection_action(marketer_client, account)

    assert reported == [(messages.SUCCESS, "TLS sink: 250 2.0.0 TLS sink ready")]


# --- (e) nothing listening -------------------------------------------------------------------------


def test_a_closed_port_reports_connection_refused(marketer):
    port = free_port()  # bound and released: nothing listens there now
    account = SmtpAccountFactory(owner=marketer, name="Nobody", host="127.0.0.1", port=port, security="none")

    result = smtp.test_connection(account)

    assert result == smtp.TestResult(False, f"Cannot connect to 127.0.0.1:{port}: Connection refused")


def test_a_closed_port_through_the_admin_action(marketer, marketer_client):
    port = free_port()
    account = SmtpAccountFactory(owner=marketer, name="Nobody", host="127.0.0.1", port=port, security="none")

    reported = run_test_connection_action(marketer_client, account)

    assert reported == [(messages.ERROR, f"Nobody: Cannot connect to 127.0.0.1:{port}: Connection refused")]


# --- (f) the result is kept and shown ---------------------------------------------------------------


def test_record_test_result_stores_it_and_the_admin_shows_it(marketer, marketer_client, starttls_server, trust_test_ca):
    account = login_account(marketer, starttls_server, PASSWORD, name="Kept")

    services.record_test_result(account_id=account.pk, result=smtp.test_connection(account))

    stored = SmtpAccountState.objects.get(account=account)
    assert stored.last_test_result == f"OK: {AUTH_OK}"
    assert stored.last_tested_at is not None
    changelist = marketer_client.get(reverse("admin:sending_smtpaccount_changelist")).content.decode()
    assert f"OK: {AUTH_OK}" in changelist
    change = marketer_client.get(reverse("admin:sending_smtpaccount_change", args=[account.pk])).content.decode()
    assert f"OK: {AUTH_OK}" in change


def test_the_action_records_failures_too(marketer, marketer_client, starttls_server, trust_test_ca):
    account = login_account(marketer, starttls_server, "wrong", name="Kept")

    run_test_connection_action(marketer_client, account)

    stored = SmtpAccountState.objects.get(account=account)
    assert stored.last_test_result == f"Failed: {AUTH_INVALID}"
    changelist = marketer_client.get(reverse("admin:sending_smtpaccount_changelist")).content.decode()
    assert f"Failed: {AUTH_INVALID}" in changelist


# --- other failures are reported, never raised ----------------------------------------------------


def test_a_password_that_cannot_be_decrypted_is_reported_not_raised(
    marketer, marketer_client, starttls_server, trust_test_ca
):
    with override_settings(FIELD_ENCRYPTION_KEYS=[Fernet.generate_key().decode()]):
        account = login_account(marketer, starttls_server, PASSWORD, name="Lost key")

    result = smtp.test_connection(account)
    reported = run_test_connection_action(marketer_client, account)

    assert not result.ok
    assert "FIELD_ENCRYPTION_KEYS" in result.message
    assert reported == [(messages.ERROR, f"Lost key: {result.message}")]
    # Refused before any connection: a missing key is not the server's fault.
    assert starttls_server.handler.connections == 0


def test_a_server_offering_no_usable_auth_mechanism_is_reported(marketer, smtp_server_factory, trust_test_ca):
    server = smtp_server_factory(
        RecordingHandler(users={LOGIN: PASSWORD}),
        tls=trust_test_ca,
        auth=True,
        auth_exclude_mechanism=["LOGIN", "PLAIN"],
    )
    account = login_account(marketer, server, PASSWORD)

    result = smtp.test_connection(account)

    assert result == smtp.TestResult(False, "SMTP failed: No suitable authentication method found.")


def test_a_server_that_hangs_up_is_reported(marketer):
    # A listener that accepts and closes at once, before any greeting.
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        account = SmtpAccountFactory(owner=marketer, name="Hangs up", host="127.0.0.1", port=port, security="none")

        def accept_and_close():
            conn, _ = listener.accept()
            conn.close()

        thread = threading.Thread(target=accept_and_close, daemon=True)
        thread.start()
        result = smtp.test_connection(account)
        thread.join(5)

    assert result == smtp.TestResult(False, "The server closed the connection: Connection unexpectedly closed")


def test_a_421_greeting_is_reported_with_the_servers_own_words(db, settings):
    import socketserver
    import threading

    class Busy(socketserver.BaseRequestHandler):
        def handle(self):
            self.request.sendall(b"421 4.3.2 Too busy, come back later\r\n")

    settings.SMTP_ALLOW_PRIVATE_HOSTS = True
    server = socketserver.TCPServer(("127.0.0.1", 0), Busy)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        account = SmtpAccountFactory(host="127.0.0.1", port=server.server_address[1], security="none", username="")
        result = smtp.test_connection(account)
    finally:
        server.shutdown()
        server.server_close()
    assert not result.ok
    assert result.message == "421 4.3.2 Too busy, come back later"


# --- a hostile server cannot hold the connection ---------------------------------------------------
# Opening a connection (connect, greeting, EHLO, STARTTLS, AUTH) has SMTP_TIMEOUT seconds in all,
# not per read; each server below answers every read well within it and would hold a client that
# only bounds reads for as long as it liked (here it gives up after a while, so the old client
# passes and its test fails instead of hanging).


@pytest.fixture
def short_timeout(settings):
    settings.SMTP_TIMEOUT = 1


@pytest.mark.parametrize(
    "stage, behaviour",
    [
        ("greeting", trickle_continuation_lines()),
        ("greeting", trickle_bytes()),
        ("EHLO", trickle_continuation_lines()),
        ("EHLO", trickle_bytes()),
    ],
    ids=[
        "greeting in endless 220- lines",
        "greeting a byte at a time",
        "EHLO in endless 250- lines",
        "EHLO a byte at a time",
    ],
)
def test_opening_a_connection_has_smtp_timeout_in_all(marketer, short_timeout, stage, behaviour):
    with RawSmtpServer({stage: behaviour}) as server:
        account = make_account(marketer, server)

        with pytest.raises(socket.timeout) as raised:
            smtp.open_connection(account)

        assert isinstance(raised.value, smtp.SmtpDeadlineExceeded)
        assert server.client_hung_up.wait(10)  # the client closed the connection


def test_a_connection_test_against_a_trickling_server_reports_the_timeout(marketer, short_timeout):
    with RawSmtpServer({"greeting": trickle_continuation_lines()}) as server:
        account = make_account(marketer, server)

        result = smtp.test_connection(account)

    assert result == smtp.TestResult(
        False, "The SMTP server timed out: not done within 1 s (SMTP_TIMEOUT); the connection was closed."
    )


def test_the_deadline_covers_the_whole_opening_not_each_reply(marketer, short_timeout):
    # Greeting and EHLO each answered after 0.6 s: every read within the 1 s, the two together not.
    with RawSmtpServer({"greeting": stall(0.6), "EHLO": stall(0.6)}) as server:
        account = make_account(marketer, server)

        with pytest.raises(smtp.SmtpDeadlineExceeded):
            smtp.open_connection(account)

        assert server.client_hung_up.wait(10)


def test_a_slow_server_within_the_deadline_is_served(marketer, short_timeout):
    # The control for the tests above: the deadline, not the server's setup, stopped them.
    with RawSmtpServer({"greeting": stall(0.2)}) as server:
        account = make_account(marketer, server)

        assert smtp.test_connection(account) == smtp.TestResult(True, "250 OK")


def one_line_of(size):
    def behave(server, sock, final_line):
        sock.sendall(b"250 " + b"x" * size + b"\r\n")

    return behave


@pytest.mark.parametrize(
    "behaviour, reason",
    [
        (flood_lines(150), "more than 100 lines"),
        (flood_lines(20, line_bytes=4000), "more than 65536 bytes"),
        (one_line_of(70 * 1024), "more than 65536 bytes"),
    ],
    ids=["150 lines", "80 KB in 20 lines", "one line of 70 KiB"],
)
def test_a_reply_past_the_caps_drops_the_connection_with_a_clear_error(marketer, behaviour, reason):
    with RawSmtpServer({"EHLO": behaviour}) as server:
        account = make_account(marketer, server)

        with pytest.raises(smtp.SmtpReplyTooLong) as raised:
            smtp.open_connection(account)

        assert str(raised.value) == f"The SMTP server's reply was too long ({reason}); the connection was closed."
        assert server.client_hung_up.wait(10)


def test_an_ehlo_answer_of_100_lines_is_still_read(marketer):
    with RawSmtpServer({"EHLO": flood_lines(98)}) as server:  # 98 + "250-raw.example" + "250 8BITMIME"
        account = make_account(marketer, server)

        assert smtp.test_connection(account) == smtp.TestResult(True, "250 OK")


# --- the action hands the test to a worker: a slow server cannot hold the web request ---------------


def test_the_action_answers_at_once_and_a_worker_tests_the_connection(marketer, marketer_client, smtp_server_factory):
    server = smtp_server_factory(RecordingHandler(noop_reply="250 2.0.0 Sink ready"))
    account = make_account(marketer, server, name="Local sink")
    changelist_url = reverse("admin:sending_smtpaccount_changelist")

    response = marketer_client.post(
        changelist_url, {"action": "test_connection", "_selected_action": [account.pk]}, follow=True
    )

    assert [(m.level, m.message) for m in response.context["messages"]] == [
        (
            messages.INFO,
            "Testing the connection of Local sink… The result shows in 'Last test result' when it is ready.",
        )
    ]
    assert server.handler.connections == 0  # the request never went near the server
    page = response.content.decode()
    assert "Testing…" in page and '<meta http-equiv="refresh" content="3">' in page  # it reloads until the result is in

    tasks.connection_test(account.pk)  # what the worker runs

    page = marketer_client.get(changelist_url).content.decode()
    assert "OK: 250 2.0.0 Sink ready" in page and 'http-equiv="refresh"' not in page
    assert server.handler.connections == 1


def test_a_test_no_worker_took_says_so_and_the_list_stops_reloading(marketer, marketer_client):
    account = SmtpAccountFactory(owner=marketer, name="Waiting", security="none")
    long_ago = timezone.now() - selectors.connection_test_patience() - timedelta(seconds=1)
    SmtpAccountState.objects.filter(account=account).update(last_test_result="Testing…", last_tested_at=long_ago)

    page = marketer_client.get(reverse("admin:sending_smtpaccount_changelist")).content.decode()

    assert "no worker has run it: is Celery running?" in page
    assert 'http-equiv="refresh"' not in page


def test_the_action_queues_the_test_for_a_worker_once_it_commits(
    marketer, marketer_client, django_capture_on_commit_callbacks
):
    account = SmtpAccountFactory(owner=marketer, name="Queued", security="none")
    try:
        queued_tasks("celery")  # an empty queue to start from
    except OSError as exc:
        pytest.skip(f"the broker does not answer: {exc}")

    with django_capture_on_commit_callbacks(execute=True):
        marketer_client.post(
            reverse("admin:sending_smtpaccount_changelist"),
            {"action": "test_connection", "_selected_action": [account.pk]},
        )

    assert ("accounts.test_connection", [account.pk]) in queued_tasks("celery")
