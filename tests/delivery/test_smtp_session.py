"""The SMTP dialogue (sending/session.py) as servers really answer it: pipelining, the
envelope written ahead, a server opening DATA after refusing the recipient, dot-stuffing.
"""

import socket
import threading
import time

import pytest
from django.utils import timezone

from campaigns.models import Campaign, Email
from campaigns.services import lifecycle
from delivery import dispatcher, sender
from sending import smtp
from sending.session import SmtpSession, data_content
from tests.factories import CampaignFactory, ContactFactory, ContactListFactory, SmtpAccountFactory
from tests.smtp_server import RawSmtpServer, flood_lines, stall, trickle_bytes, trickle_continuation_lines

S = Email.Status
OK = "250 2.0.0 OK: queued"  # what RecordingHandler answers to an accepted DATA


# --- a server that opens DATA although it refused the recipient ---------------------------------


class _LaxPipeliningServer(threading.Thread):
    """A plain-socket SMTP server that breaks RFC 2920: it answers 354 to DATA after refusing the
    only recipient (aiosmtpd cannot be made to). It records every line it receives."""

    def __init__(self, refused):
        super().__init__(daemon=True)
        self.refused = refused
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.lines, self.delivered = [], []

    def run(self):
        conn, _ = self.listener.accept()
        with conn, conn.makefile("rb") as incoming:
            conn.sendall(b"220 lax.example ESMTP\r\n")
            recipient, in_data, body = None, False, []
            for raw in incoming:
                line = raw.rstrip(b"\r\n").decode()
                self.lines.append(line)
                if in_data:
                    if line == ".":
                        in_data = False
                        if recipient is None:
                            conn.sendall(b"554 5.5.1 No valid recipients\r\n")
                        else:
                            self.delivered.append((recipient, body))
                            conn.sendall(b"250 2.0.0 OK\r\n")
                        recipient, body = None, []
                    else:
                        body.append(line)
                    continue
                verb = line.split(":")[0].split(" ")[0].upper()
                if verb == "EHLO":
                    conn.sendall(b"250-lax.example\r\n250 PIPELINING\r\n")
                elif verb == "RCPT":
                    address = line.split("<", 1)[1].rstrip(">")
                    if address in self.refused:
                        conn.sendall(b"550 5.1.1 User unknown\r\n")
                    else:
                        recipient = address
                        conn.sendall(b"250 2.1.5 OK\r\n")
                elif verb == "DATA":
                    in_data = True
                    conn.sendall(b"354 go ahead\r\n")
                elif verb == "QUIT":
                    conn.sendall(b"221 bye\r\n")
                    return
                else:  # MAIL, RSET, NOOP
                    conn.sendall(b"250 OK\r\n")


def test_a_server_opening_data_after_refusing_the_recipient_gets_no_content_and_the_batch_goes_on(
    allow_local_smtp, marketer
):
    server = _LaxPipeliningServer(refused={"gone@example.org"})
    server.start()
    account = SmtpAccountFactory(
        owner=marketer,
        host="127.0.0.1",
        port=server.port,
        security="none",
        username="",
        from_email="news@alice.example",
        max_per_minute=6000,
        max_per_hour=100000,
        max_per_day=1000000,
    )
    contacts = [ContactFactory(owner=marketer, email=a) for a in ("gone@example.org", "here@example.org")]
    campaign = CampaignFactory(
        owner=marketer, smtp_account=account, lists=[ContactListFactory(owner=marketer, contacts=contacts)]
    )
    lifecycle.send_now(campaign=campaign)
    claimed = []
    dispatcher.tick(enqueue=claimed.append)

    (report,) = [sender.send_batch(batch_id, sleep=lambda seconds: None) for batch_id in claimed]
    server.join(timeout=5)

    rows = {e.to_email: e for e in Email.objects.filter(campaign=campaign)}
    assert (rows["gone@example.org"].status, rows["gone@example.org"].smtp_code) == (S.FAILED, 550)
    assert rows["gone@example.org"].smtp_response == "550 5.1.1 User unknown"
    assert rows["here@example.org"].status == S.SENT
    assert [recipient for recipient, _ in server.delivered] == ["here@example.org"]
    # The refused message's DATA got a lone "." and the envelope was reset: none of its content went out.
    first_dot = server.lines.index(".")
    assert server.lines[first_dot - 1] == "DATA" and server.lines[first_dot + 1].upper() == "RSET"
    assert report.sent == 1 and report.failed == 1 and report.connections == 1


# --- the next envelope written behind the content ------------------------------------------------


class _AheadServer(threading.Thread):
    """A plain-socket SMTP server offering PIPELINING that records, for each message's content,
    whether the next message's MAIL, RCPT and DATA arrived before it answered that content.

    It holds its answer to a content until the next DATA line arrives or 0.3 s pass.
    `content_reply(n)` gives the answer to the n-th content (0-based)."""

    def __init__(self, content_reply=lambda n: b"250 2.0.0 OK"):
        super().__init__(daemon=True)
        self.content_reply = content_reply
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.lines, self.delivered, self.ahead = [], [], []
        self.connections = 0

    def run(self):
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.connections += 1
            self._serve(conn)

    def _serve(self, conn):
        with conn:
            conn.sendall(b"220 ahead.example ESMTP\r\n")
            buffer, recipient, in_data, held = b"", None, False, None
            conn.settimeout(0.3)
            while True:
                if b"\r\n" not in buffer:
                    try:
                        chunk = conn.recv(65536)
                    except TimeoutError:
                        chunk = None
                    if chunk is None:  # nothing more came: answer what is held
                        if held is not None:
                            self.ahead.append(False)
                            conn.sendall(held + b"\r\n")
                            held = None
                        continue
                    if not chunk:
                        return  # the client dropped the connection
                    buffer += chunk
                    continue
                raw, buffer = buffer.split(b"\r\n", 1)
                line = raw.decode()
                self.lines.append(line)
                if in_data:
                    if line == ".":
                        in_data = False
                        self.delivered.append(recipient)
                        held = self.content_reply(len(self.delivered) - 1)
                        recipient = None
                        if held.startswith(b"421"):
                            self.ahead.append(b"MAIL" in buffer)
                            conn.sendall(held + b"\r\n")
                            return
                    continue
                verb = line.split(":")[0].split(" ")[0].upper()
                if verb == "EHLO":
                    conn.sendall(b"250-ahead.example\r\n250 PIPELINING\r\n")
                elif verb == "MAIL":
                    conn.sendall(b"250 2.1.0 OK\r\n")
                elif verb == "RCPT":
                    recipient = line.split("<", 1)[1].rstrip(">")
                    conn.sendall(b"250 2.1.5 OK\r\n")
                elif verb == "DATA":
                    if held is not None:  # the next envelope came before the content's answer
                        self.ahead.append(True)
                        conn.sendall(held + b"\r\n")
                        held = None
                    in_data = True
                    conn.sendall(b"354 go ahead\r\n")
                elif verb == "QUIT":
                    if held is not None:
                        self.ahead.append(False)
                        conn.sendall(held + b"\r\n")
                    conn.sendall(b"221 bye\r\n")
                    return
                else:
                    conn.sendall(b"250 OK\r\n")


def _ahead_campaign(marketer, port, addresses, **account_fields):
    account = SmtpAccountFactory(
        owner=marketer,
        host="127.0.0.1",
        port=port,
        security="none",
        username="",
        from_email="news@alice.example",
        **{"max_per_minute": 6000, "max_per_hour": 100000, "max_per_day": 1000000, **account_fields},
    )
    contacts = [ContactFactory(owner=marketer, email=a) for a in addresses]
    campaign = CampaignFactory(
        owner=marketer, smtp_account=account, lists=[ContactListFactory(owner=marketer, contacts=contacts)]
    )
    lifecycle.send_now(campaign=campaign)
    return campaign


def test_the_next_envelope_goes_out_with_the_content_and_each_message_is_answered_and_recorded(
    allow_local_smtp, marketer
):
    server = _AheadServer()
    server.start()
    addresses = [f"r{i}@example.org" for i in range(4)]
    campaign = _ahead_campaign(marketer, server.port, addresses)

    dispatcher.tick(enqueue=lambda batch_id: sender.send_batch(batch_id, sleep=lambda seconds: None))

    assert server.delivered == addresses
    # Messages 1-3 each had the next envelope behind them; the last one nothing to send ahead.
    assert server.ahead == [True, True, True, False]
    assert {e.status for e in Email.objects.filter(campaign=campaign)} == {S.SENT}
    assert [line.upper() for line in server.lines].count("QUIT") == 1 and server.connections == 1


def test_a_paced_account_sends_no_envelope_ahead_of_a_slot_far_away(allow_local_smtp, marketer):
    server = _AheadServer()
    server.start()
    addresses = ["a@example.org", "b@example.org"]
    _ahead_campaign(marketer, server.port, addresses, max_per_minute=600)  # a slot every 0.1 s
    fixed = timezone.now()  # waits are not slept: the clock stays where the slots are counted from
    dispatcher.tick(
        now=fixed, enqueue=lambda batch_id: sender.send_batch(batch_id, clock=lambda: fixed, sleep=lambda seconds: None)
    )

    assert server.delivered == addresses and server.ahead == [False, False]


def test_the_envelope_ahead_can_be_turned_off(allow_local_smtp, marketer, settings):
    settings.SMTP_ENVELOPE_AHEAD_SECONDS = 0
    server = _AheadServer()
    server.start()
    addresses = ["a@example.org", "b@example.org"]
    _ahead_campaign(marketer, server.port, addresses)
    dispatcher.tick(enqueue=lambda batch_id: sender.send_batch(batch_id, sleep=lambda seconds: None))

    assert server.delivered == addresses and server.ahead == [False, False]


def test_a_batch_stopping_with_an_envelope_ahead_drops_the_connection_and_the_next_message_is_never_sent(
    allow_local_smtp, marketer
):
    server = _AheadServer()
    server.start()
    addresses = ["a@example.org", "b@example.org", "c@example.org"]
    campaign = _ahead_campaign(marketer, server.port, addresses)

    def cancel_during_the_wait(seconds):
        lifecycle.cancel(campaign=Campaign.objects.get(pk=campaign.pk))

    fixed = timezone.now()  # b's slot stays 10 ms ahead: a wait, during which the campaign is cancelled
    dispatcher.tick(
        now=fixed,
        enqueue=lambda batch_id: sender.send_batch(batch_id, clock=lambda: fixed, sleep=cancel_during_the_wait),
    )

    # b's envelope (and DATA) went out behind a's content; the cancel stopped the batch before b's
    # content: the connection was dropped without a QUIT (which the server would have taken as
    # b's content), and the server delivered only a.
    assert server.delivered == ["a@example.org"]
    assert server.ahead == [True]
    assert "QUIT" not in [line.upper() for line in server.lines]
    statuses = {e.to_email: e.status for e in Email.objects.filter(campaign=campaign)}
    assert statuses == {"a@example.org": S.SENT, "b@example.org": S.CANCELLED, "c@example.org": S.CANCELLED}


def test_a_421_after_a_content_with_an_envelope_ahead_defers_that_one_and_hands_the_rest_back(
    allow_local_smtp, marketer
):
    server = _AheadServer(content_reply=lambda n: b"421 4.7.0 Too many messages, closing" if n == 1 else b"250 OK")
    server.start()
    addresses = ["a@example.org", "b@example.org", "c@example.org"]
    campaign = _ahead_campaign(marketer, server.port, addresses)

    dispatcher.tick(enqueue=lambda batch_id: sender.send_batch(batch_id, sleep=lambda seconds: None))

    rows = {e.to_email: e for e in Email.objects.filter(campaign=campaign)}
    assert rows["a@example.org"].status == S.SENT
    assert (rows["b@example.org"].status, rows["b@example.org"].smtp_code) == (S.DEFERRED, 421)
    # c's envelope went out behind b's content, but c was never delivered: back to pending, unspent.
    assert server.ahead[-1] is True and server.delivered == ["a@example.org", "b@example.org"]
    assert (rows["c@example.org"].status, rows["c@example.org"].attempts) == (S.PENDING, 0)


@pytest.mark.parametrize(
    "raw, sent",
    [
        (b"Subject: x\r\n\r\nno dots here\r\n", b"Subject: x\r\n\r\nno dots here\r\n.\r\n"),
        (b".starts\r\n.second\r\nmid.dle\r\n..two", b"..starts\r\n..second\r\nmid.dle\r\n...two\r\n.\r\n"),
        (b"a\r\n.\r\nb\r\n", b"a\r\n..\r\nb\r\n.\r\n"),
    ],
)
def test_lines_starting_with_a_dot_are_doubled_and_the_content_ends_with_a_lone_dot(raw, sent):
    # RFC 5321 4.5.2: a line of content that starts with "." gets one more, or the server would
    # read a lone "." as the end of the message.
    assert data_content(raw) == sent


def test_a_body_with_lines_starting_with_a_dot_arrives_whole(engine):
    # Quoted-printable leaves ".hidden" as it is; without dot-stuffing the server would take a
    # lone "." line as the end of the message and the next line as a command.
    body = "Dear reader,\n.hidden line\n..two dots\n.\nthe end"
    campaign = engine.campaign(engine.contact_list("a@example.org", "b@example.org"), body_text=body)
    engine.send_now(campaign)

    engine.tick()

    assert sorted(engine.handler.delivered_to()) == ["a@example.org", "b@example.org"]
    for received in engine.handler.messages:
        text = received.parsed().get_body(preferencelist=("plain",)).get_content()
        assert text.replace("\r\n", "\n").startswith(body)
    assert set(engine.statuses(campaign).values()) == {S.SENT}


# --- one message's transaction ends within SMTP_TIMEOUT, whatever the server does -------------------
# Each server below answers every read well within SMTP_TIMEOUT, and gives up after a while (so a
# client that only bounds reads gets through, and the test fails instead of hanging).

MESSAGE = b"Subject: hi\r\n\r\nHello\r\n"


@pytest.fixture
def hostile_session(allow_local_smtp, settings, marketer):
    """hostile_session(hostile, pipelining=False) -> (server, open SmtpSession), SMTP_TIMEOUT 1 s."""
    settings.SMTP_TIMEOUT = 1
    started = []

    def start(hostile, *, pipelining=False):
        server = RawSmtpServer(hostile, pipelining=pipelining).__enter__()
        started.append(server)
        account = SmtpAccountFactory(owner=marketer, host=server.host, port=server.port, security="none", username="")
        session = SmtpSession(account)
        session.open()
        return server, session

    yield start
    for server in started:
        server.__exit__(None, None, None)


HOSTILE_ANSWERS = {
    "content answered in endless 250- lines": ("CONTENT", trickle_continuation_lines()),
    "content answered a byte at a time": ("CONTENT", trickle_bytes()),
    "MAIL answered in endless 250- lines": ("MAIL", trickle_continuation_lines()),
    "RCPT answered a byte at a time": ("RCPT", trickle_bytes()),
}


@pytest.mark.parametrize("pipelining", [False, True], ids=["stepwise", "pipelined"])
@pytest.mark.parametrize("case", list(HOSTILE_ANSWERS))
def test_a_transaction_ends_within_smtp_timeout_and_closes_the_connection(hostile_session, case, pipelining):
    stage, behaviour = HOSTILE_ANSWERS[case]
    server, session = hostile_session({stage: behaviour}, pipelining=pipelining)

    with pytest.raises(socket.timeout) as raised:  # what the sender treats as a lost connection
        session.transact("news@alice.example", "ann@example.org", MESSAGE)

    assert isinstance(raised.value, smtp.SmtpDeadlineExceeded)
    # Lost after the content was written: the server may have the message.
    assert session.lost() is (stage == "CONTENT")
    assert not session.connected
    assert server.client_hung_up.wait(10)


@pytest.mark.parametrize("pipelining", [False, True], ids=["stepwise", "pipelined"])
def test_the_deadline_covers_the_whole_transaction_not_each_reply(hostile_session, pipelining):
    # Every answer after 0.4 s: each read within the 1 s, the transaction's answers together not.
    slow = {stage: stall(0.4) for stage in ("MAIL", "RCPT", "DATA", "CONTENT")}
    server, session = hostile_session(slow, pipelining=pipelining)

    with pytest.raises(smtp.SmtpDeadlineExceeded):
        session.transact("news@alice.example", "ann@example.org", MESSAGE)

    assert server.client_hung_up.wait(10)


def test_each_transaction_has_a_deadline_of_its_own(hostile_session):
    # Three messages whose answers take 0.5 s each: together past the 1 s, each one within it.
    server, session = hostile_session({"CONTENT": stall(0.25), "MAIL": stall(0.25)})

    assert session.transact("news@alice.example", "ann@example.org", MESSAGE)[0] == 250
    assert session.transact("news@alice.example", "bob@example.org", MESSAGE)[0] == 250
    assert session.transact("news@alice.example", "cy@example.org", MESSAGE)[0] == 250
    session.close()
    assert len(server.messages) == 3


@pytest.mark.parametrize("pipelining", [False, True], ids=["stepwise", "pipelined"])
def test_the_callers_own_work_before_the_content_is_not_counted(hostile_session, pipelining):
    server, session = hostile_session({}, pipelining=pipelining)
    session.before_content = lambda: time.sleep(1.2)  # settling the previous result: longer than SMTP_TIMEOUT

    assert session.transact("news@alice.example", "ann@example.org", MESSAGE) == (250, "250 2.0.0 OK: queued")


@pytest.mark.parametrize("pipelining", [False, True], ids=["stepwise", "pipelined"])
def test_a_flooded_answer_to_the_content_drops_the_connection(hostile_session, pipelining):
    server, session = hostile_session({"CONTENT": flood_lines(150)}, pipelining=pipelining)

    with pytest.raises(smtp.SmtpReplyTooLong, match=r"more than 100 lines"):
        session.transact("news@alice.example", "ann@example.org", MESSAGE)

    assert session.lost() is True  # the content was written: the server may have it
    assert server.client_hung_up.wait(10)
