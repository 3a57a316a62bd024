"""Outages without loss: a server that cannot be reached backs the account off, never the emails.

A connection-level failure (refused, hung up before the greeting, TLS handshake, timeout before
any reply) hands the batch's rows back unspent and rests the account 30 s, doubling with each
failed try up to 30 min; the first connection that works ends the rest. A server's reply (a 421
greeting) keeps the reply rules. Time is the engine's Clock, moved by hand.
"""

import logging
import socket
import socketserver
import threading
import zoneinfo
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils.formats import date_format

from campaigns.models import Email
from sending.models import SmtpAccount
from tests.smtp_server import RecordingHandler

S = Email.Status
TICK = 10  # the dispatch interval (allow_local_smtp sets DISPATCH_INTERVAL_SECONDS)


def unreachable_message(account):
    return f"Cannot connect to {account.host}:{account.port}: Connection refused"


def account_state(engine):
    return SmtpAccount.objects.select_related("state").get(pk=engine.account.pk)


def rows(engine, campaign):
    return {e.to_email: (e.status, e.attempts, e.batch_id) for e in engine.emails(campaign).values()}


def backoff_logs(caplog):
    return [r for r in caplog.records if "cannot reach its server" in r.getMessage()]


# --- (1) refused: released unspent, the account rests, doubling ----------------------------------


def test_a_refused_connection_releases_the_rows_unspent_and_backs_the_account_off_doubling(engine):
    addresses = ["a@example.org", "b@example.org", "c@example.org"]
    campaign = engine.campaign(engine.contact_list(*addresses))
    engine.server.stop()
    engine.send_now(campaign)
    failed_at = engine.clock()

    engine.tick()

    assert engine.ticks[-1].claimed == 3
    assert rows(engine, campaign) == {a: (S.PENDING, 0, None) for a in addresses}
    assert engine.reports[-1].released == 3 and engine.reports[-1].deferred == 0
    account = account_state(engine)
    assert (account.state.backoff_seconds, account.state.backoff_until) == (30, failed_at + timedelta(seconds=30))
    assert (account.state.unreachable_since, account.state.last_connection_error_at) == (failed_at, failed_at)
    assert account.state.last_connection_error == unreachable_message(account)
    assert account.state.paused_until is None  # no pause: nothing for the owner to fix

    # Within the rest the dispatcher claims nothing for the account.
    for _ in range(2):
        engine.clock.advance(seconds=TICK)
        assert engine.tick().claimed == 0

    # After it, one more try; it fails too, and the rest doubles.
    retried_at = engine.clock.advance(seconds=TICK)
    assert engine.tick().claimed == 3
    account = account_state(engine)
    assert (account.state.backoff_seconds, account.state.backoff_until) == (60, retried_at + timedelta(seconds=60))
    assert (account.state.unreachable_since, account.state.last_connection_error_at) == (failed_at, retried_at)
    assert rows(engine, campaign) == {a: (S.PENDING, 0, None) for a in addresses}


def test_the_rest_doubles_up_to_its_cap(engine, settings):
    settings.ACCOUNT_BACKOFF_BASE_SECONDS, settings.ACCOUNT_BACKOFF_MAX_SECONDS = 30, 100
    campaign = engine.campaign(engine.contact_list("a@example.org"))
    engine.server.stop()
    engine.send_now(campaign)

    rests = []
    for _ in range(4):
        engine.tick()
        rests.append(account_state(engine).state.backoff_seconds)
        engine.clock.now = account_state(engine).state.backoff_until

    assert rests == [30, 60, 100, 100]


# --- every way of not reaching the server is an outage, not an email's failure ------------------


def _silent_listener():
    """Accepts TCP connections (the kernel's backlog) and never says a word: a timeout before any reply."""
    listener = socket.create_server(("127.0.0.1", 0), backlog=16)
    return listener, listener.getsockname()[1]


@pytest.mark.parametrize("failure", ["hung up before the greeting", "TLS handshake", "timeout before any reply"])
def test_every_connection_level_failure_backs_the_account_off(make_engine, settings, failure):
    settings.SMTP_TIMEOUT = 0.3
    handler = RecordingHandler(accept_connections=0 if failure == "hung up before the greeting" else None)
    # A plain-text server answering an account that expects TLS from the first byte: the handshake fails.
    engine = make_engine(handler, security="ssl" if failure == "TLS handshake" else "none")
    listener = None
    if failure == "timeout before any reply":
        listener, engine.account.port = _silent_listener()
        engine.account.save()
    try:
        campaign = engine.campaign(engine.contact_list("a@example.org", "b@example.org"))
        engine.send_now(campaign)
        engine.tick()
    finally:
        if listener is not None:
            listener.close()

    assert rows(engine, campaign) == {a: (S.PENDING, 0, None) for a in ("a@example.org", "b@example.org")}
    account = account_state(engine)
    assert account.state.backoff_seconds == 30 and account.state.unreachable_since == engine.clock()
    expected = {
        "hung up before the greeting": "The server closed the connection",
        "TLS handshake": "TLS failed",
        "timeout before any reply": "timed out",
    }[failure]
    assert expected in account.state.last_connection_error
    assert engine.handler.messages == []


# --- (2) three hours down, then back: every email once ----------------------------------------


def test_three_hours_of_outage_then_the_server_back_delivers_every_email_once(make_engine):
    engine = make_engine(batch_size=2)
    addresses = [f"reader{i}@example.org" for i in range(5)]
    campaign = engine.campaign(engine.contact_list(*addresses))
    port = engine.server.port
    engine.server.stop()
    engine.send_now(campaign)
    outage_started = engine.clock()
    tries = 0

    back_at = outage_started + timedelta(hours=3)
    while engine.clock() < back_at:
        tries += bool(engine.tick().claimed)
        engine.clock.advance(seconds=TICK)

    # The account tried at 0, 30 s, 1 min 30, 3 min 30, ... then every 30 min: a dozen tries, not 1080.
    assert 8 <= tries <= 12
    account = account_state(engine)
    assert account.state.backoff_seconds == 1800 and account.state.unreachable_since == outage_started
    assert rows(engine, campaign) == {a: (S.PENDING, 0, None) for a in addresses}

    engine.server.start(port=port)
    # At most one full rest (30 min) until the next try finds it.
    deadline = engine.clock() + timedelta(seconds=1800 + TICK)
    while set(engine.statuses(campaign).values()) != {S.SENT} and engine.clock() < deadline:
        engine.tick()
        engine.clock.advance(seconds=TICK)

    assert sorted(engine.handler.delivered_to()) == sorted(addresses)  # each exactly once
    emails = engine.emails(campaign).values()
    assert {(e.status, e.attempts, e.possible_duplicate) for e in emails} == {(S.SENT, 1, False)}
    account = account_state(engine)
    assert (account.state.backoff_seconds, account.state.backoff_until, account.state.unreachable_since) == (
        0,
        None,
        None,
    )
    # The last error stays as the account's history.
    assert account.state.last_connection_error == unreachable_message(account)


# --- (3) a server's reply keeps the reply rules ----------------------------------------------------


@pytest.fixture
def busy_server():
    """Answers every connection with a 421 greeting, as a server going down for maintenance does."""

    class Busy(socketserver.BaseRequestHandler):
        def handle(self):
            self.request.sendall(b"421 4.3.2 Too busy, come back later\r\n")

    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Busy)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def test_a_421_greeting_still_defers_by_the_ladder_without_backing_the_account_off(engine, busy_server):
    engine.account.port = busy_server
    engine.account.save()
    campaign = engine.campaign(engine.contact_list("a@example.org", "b@example.org"))
    engine.send_now(campaign)

    engine.tick()

    for email in engine.emails(campaign).values():
        assert (email.status, email.attempts, email.smtp_code) == (S.DEFERRED, 1, 421)
        assert email.smtp_response == "421 4.3.2 Too busy, come back later"
        assert email.next_attempt_at == engine.clock() + timedelta(seconds=30)
    account = account_state(engine)
    assert (account.state.backoff_seconds, account.state.backoff_until, account.state.unreachable_since) == (
        0,
        None,
        None,
    )


def test_a_refused_login_still_pauses_the_account_without_a_backoff(make_engine, tls_files, settings):
    settings.SMTP_CA_FILE = str(tls_files.ca_file)
    handler = RecordingHandler(users={"alice": "right"})
    engine = make_engine(
        handler, server_kwargs={"tls": tls_files, "auth": True}, security="starttls", host="localhost", username="alice"
    )
    engine.account.set_password("wrong")
    engine.account.save()
    campaign = engine.campaign(engine.contact_list("a@example.org"))
    engine.send_now(campaign)

    engine.tick()

    # 535 (bad credentials) is the account's, as before: a pause, the row unspent; no backoff.
    account = account_state(engine)
    assert account.state.paused_until is not None and account.state.pause_reason.startswith("535")
    assert account.state.unreachable_since is None
    assert rows(engine, campaign) == {"a@example.org": (S.PENDING, 0, None)}


# --- (4) logged once per failure, not per email -------------------------------------------------


def test_an_outage_is_logged_once_per_failed_try_not_per_email_or_batch(make_engine, caplog):
    engine = make_engine(batch_size=2)
    addresses = [f"reader{i}@example.org" for i in range(6)]
    campaign = engine.campaign(engine.contact_list(*addresses))
    engine.server.stop()
    engine.send_now(campaign)
    caplog.set_level(logging.INFO)

    engine.tick()

    # Three batches of two were claimed; the first was refused and started the rest, the other two
    # found it running and handed their rows back untried: one warning, naming the error, none per email.
    assert len(engine.ticks[-1].batches) == 3
    assert [r.notes for r in engine.reports] == [
        [f"server unreachable: {unreachable_message(engine.account)}"],
        ["account resting: its server could not be reached"],
        ["account resting: its server could not be reached"],
    ]
    assert [r.levelno for r in backoff_logs(caplog)] == [logging.WARNING]
    assert unreachable_message(engine.account) in backoff_logs(caplog)[0].getMessage()
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert warnings == backoff_logs(caplog)
    assert account_state(engine).state.backoff_seconds == 30

    engine.clock.advance(seconds=30)
    engine.tick()
    assert len(backoff_logs(caplog)) == 2 and account_state(engine).state.backoff_seconds == 60
    assert rows(engine, campaign) == {a: (S.PENDING, 0, None) for a in addresses}


# --- shown on the dashboard banner and the account page ----------------------------------------


def test_the_dashboard_banner_lists_an_unreachable_account_with_its_error_and_next_try(marketer_client, engine):
    campaign = engine.campaign(engine.contact_list("a@example.org"))
    engine.server.stop()
    engine.send_now(campaign)
    engine.tick()
    account = account_state(engine)

    data = marketer_client.get(reverse("dashboard_data")).json()

    tz = zoneinfo.ZoneInfo(engine.owner.timezone)
    assert data["paused_accounts"] == [
        {
            "kind": "unreachable",
            "name": account.name,
            "reason": unreachable_message(account),
            "since": account.state.unreachable_since.isoformat(),
            "since_display": date_format(account.state.unreachable_since.astimezone(tz), "DATETIME_FORMAT"),
            # The clock of the test is the real time here: the rest's end is still ahead.
            "next_try": account.state.backoff_until.isoformat(),
            "next_try_display": date_format(account.state.backoff_until.astimezone(tz), "DATETIME_FORMAT"),
        }
    ]

    # Once a connection works, the account leaves the banner.
    engine.server.start(port=account.port)
    engine.clock.advance(seconds=30)
    engine.tick()
    assert marketer_client.get(reverse("dashboard_data")).json()["paused_accounts"] == []


def test_the_account_page_shows_the_outage_read_only(marketer_client, engine):
    campaign = engine.campaign(engine.contact_list("a@example.org"))
    engine.server.stop()
    engine.send_now(campaign)
    engine.tick()

    page = marketer_client.get(reverse("admin:sending_smtpaccount_change", args=[engine.account.pk]))
    listing = marketer_client.get(reverse("admin:sending_smtpaccount_changelist"))

    html = page.content.decode()
    assert "Cannot reach the server since" in html and "Its emails wait unspent." in html
    assert unreachable_message(engine.account) in html
    assert 'name="backoff_until"' not in html and 'name="last_connection_error"' not in html  # not editable
    assert "Cannot reach the server; next try at" in listing.content.decode()
