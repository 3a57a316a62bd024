"""Reading a bounce mailbox from a real Dovecot over IMAPS, IMAP with STARTTLS, POP3S and POP3 with STLS."""

import tracemalloc

import pytest
from django.test import override_settings

from sending import mailbox_sessions, services
from sending.mailbox import MailboxError, open_mailbox
from sending.models import BounceMailbox
from tests.dovecot import start_dovecot
from tests.factories import SmtpAccountFactory
from tests.isolation import free_port

READS = [
    pytest.param("imap", "ssl", id="imaps"),
    pytest.param("imap", "starttls", id="imap-starttls"),
    pytest.param("pop3", "ssl", id="pop3s"),
    pytest.param("pop3", "starttls", id="pop3-stls"),
]


@pytest.fixture(scope="module")
def dovecot_server():
    server = start_dovecot()
    yield server
    server.stop()


@pytest.fixture
def dovecot(dovecot_server, settings):
    """The module's Dovecot with an empty inbox, its certificate trusted as SMTP_CA_FILE."""
    for path in dovecot_server.stored():
        path.unlink()
    settings.SMTP_CA_FILE = str(dovecot_server.cert_file)
    return dovecot_server


def port_of(dovecot, protocol, security):
    return {
        ("imap", "ssl"): dovecot.imaps_port,
        ("imap", "starttls"): dovecot.imap_port,
        ("pop3", "ssl"): dovecot.pop3s_port,
        ("pop3", "starttls"): dovecot.pop3_port,
    }[(protocol, security)]


def make_mailbox(dovecot, protocol="imap", security="ssl", *, password=None, folder="INBOX", host=None):
    return services.configure_bounce_mailbox(
        account=SmtpAccountFactory(),
        protocol=protocol,
        host=host or dovecot.host,
        port=port_of(dovecot, protocol, security),
        security=security,
        username=dovecot.username,
        password=dovecot.password if password is None else password,
        folder=folder,
    )


def message(n, size=0):
    filler = b"x" * 70 + b"\r\n"
    body = filler * (size // len(filler))
    return b"From: MAILER-DAEMON@mx.example\r\nSubject: bounce %d\r\n\r\nbounce number %d\r\n%s" % (n, n, body)


def read_all(mailbox, *, done=lambda message: True):
    seen = []
    with open_mailbox(mailbox) as reader:
        for item in reader.messages():
            seen.append(item)
            if done(item):
                reader.done(item.key)
    return seen


@pytest.mark.django_db
@pytest.mark.parametrize("protocol,security", READS)
def test_messages_stream_and_done_removes_them_so_a_second_read_sees_none(dovecot, protocol, security):
    for n in range(3):
        dovecot.deliver(message(n))
    mailbox = make_mailbox(dovecot, protocol, security)

    first = read_all(mailbox)

    assert sorted(item.raw for item in first) == [message(n) for n in range(3)]
    assert len({item.key for item in first}) == 3
    assert read_all(mailbox) == []
    assert dovecot.stored() == []
    mailbox.refresh_from_db()
    assert (mailbox.processed_count, mailbox.last_error) == (3, "")
    assert mailbox.last_checked_at is not None


@pytest.mark.django_db
@pytest.mark.parametrize("protocol,security", READS)
def test_a_message_not_marked_done_stays_for_the_next_read(dovecot, protocol, security):
    dovecot.deliver(message(1))
    dovecot.deliver(message(2))
    mailbox = make_mailbox(dovecot, protocol, security)

    read_all(mailbox, done=lambda item: item.raw == message(1))

    assert [item.raw for item in read_all(mailbox)] == [message(2)]
    mailbox.refresh_from_db()
    assert mailbox.processed_count == 2


@pytest.mark.django_db
@pytest.mark.parametrize("protocol", ["imap", "pop3"])
def test_done_twice_for_one_message_removes_it_once(dovecot, protocol):
    dovecot.deliver(message(1))
    mailbox = make_mailbox(dovecot, protocol)
    with open_mailbox(mailbox) as reader:
        (item,) = reader.messages()
        reader.done(item.key)
        reader.done(item.key)
    assert dovecot.stored() == []
    mailbox.refresh_from_db()
    assert mailbox.processed_count == 1


@pytest.mark.django_db
@pytest.mark.parametrize("protocol", ["imap", "pop3"])
def test_a_session_cut_before_it_ends_keeps_the_messages_it_processed(dovecot, protocol):
    dovecot.deliver(message(1))
    mailbox = make_mailbox(dovecot, protocol)
    session = mailbox_sessions.connect(mailbox)
    (key,) = session.keys()
    session.remove(key)
    session.conn.shutdown() if protocol == "imap" else session.conn.close()  # no LOGOUT, no QUIT

    assert [item.raw for item in read_all(mailbox)] == [message(1)]


@pytest.mark.django_db
def test_imap_removes_processed_messages_in_groups_and_the_rest_at_the_end(dovecot, monkeypatch):
    monkeypatch.setattr(mailbox_sessions.ImapSession, "EXPUNGE_EVERY", 2)
    for n in range(5):
        dovecot.deliver(message(n))
    mailbox = make_mailbox(dovecot)
    with open_mailbox(mailbox) as reader:
        remaining = []
        for item in reader.messages():
            reader.done(item.key)
            remaining.append(len(dovecot.stored()))

    assert remaining == [5, 3, 3, 1, 1]
    assert dovecot.stored() == []


@pytest.mark.django_db
def test_a_message_flagged_deleted_by_a_cut_session_is_expunged_unread(dovecot):
    dovecot.deliver(message(1))
    dovecot.deliver(message(2))
    mailbox = make_mailbox(dovecot)
    session = mailbox_sessions.connect(mailbox)
    first = session.keys()[0]
    session.conn.uid("STORE", first, "+FLAGS.SILENT", "(\\Deleted)")
    session.conn.shutdown()  # cut between the flag and the expunge

    assert [item.raw for item in read_all(mailbox)] == [message(2)]
    assert dovecot.stored() == []


@pytest.mark.django_db
@pytest.mark.parametrize("protocol,security", READS)
def test_a_wrong_password_is_a_clear_error_recorded_on_the_mailbox(dovecot, protocol, security):
    dovecot.deliver(message(1))
    mailbox = make_mailbox(dovecot, protocol, security, password="not-the-password")

    with pytest.raises(MailboxError, match="The server refused the login: .*[Aa]uthentication failed"):
        read_all(mailbox)

    mailbox.refresh_from_db()
    assert mailbox.last_error.startswith("The server refused the login")
    assert mailbox.last_error_at == mailbox.last_checked_at
    assert len(dovecot.stored()) == 1


@pytest.mark.django_db
@pytest.mark.parametrize("protocol,security", READS)
def test_a_certificate_not_trusted_is_refused_before_any_login(dovecot, protocol, security, settings):
    settings.SMTP_CA_FILE = ""  # the self-signed certificate is in no trusted store
    mailbox = make_mailbox(dovecot, protocol, security)
    logged_before = len(dovecot.log())

    with pytest.raises(MailboxError, match="TLS certificate verification failed: self.signed certificate"):
        read_all(mailbox)

    mailbox.refresh_from_db()
    assert mailbox.last_error.startswith("TLS certificate verification failed")
    assert "Login: " not in dovecot.log()[logged_before:]


@pytest.mark.django_db
def test_a_certificate_for_another_name_is_refused(dovecot):
    mailbox = make_mailbox(dovecot, host="127.0.0.1")  # the certificate names localhost only

    with pytest.raises(MailboxError, match="TLS certificate verification failed: .*(mismatch|not valid)"):
        read_all(mailbox)


@pytest.mark.django_db
def test_a_missing_imap_folder_is_a_clear_error(dovecot):
    mailbox = make_mailbox(dovecot, folder="Bounces")

    with pytest.raises(MailboxError, match="The folder 'Bounces' cannot be opened: .*doesn't exist"):
        read_all(mailbox)

    mailbox.refresh_from_db()
    assert "Bounces" in mailbox.last_error


@pytest.mark.django_db
def test_a_server_that_does_not_listen_is_a_clear_error(dovecot):
    mailbox = make_mailbox(dovecot)
    BounceMailbox.objects.filter(pk=mailbox.pk).update(port=free_port())
    mailbox.refresh_from_db()

    with pytest.raises(MailboxError, match=r"Cannot connect to localhost:\d+: Connection refused"):
        read_all(mailbox)


@pytest.mark.django_db
def test_the_destination_guard_refuses_private_hosts_and_other_ports(dovecot):
    mailbox = make_mailbox(dovecot)
    with override_settings(SMTP_ALLOW_PRIVATE_HOSTS=False):
        with pytest.raises(MailboxError, match=f"Port {mailbox.port} is not allowed for IMAP; use one of 110, 143"):
            read_all(mailbox)
        BounceMailbox.objects.filter(pk=mailbox.pk).update(port=993)
        mailbox.refresh_from_db()
        with pytest.raises(MailboxError, match="The IMAP host 'localhost' resolves to a private, loopback"):
            read_all(mailbox)


@pytest.mark.django_db
@pytest.mark.parametrize("protocol", ["imap", "pop3"])
def test_a_large_message_is_read_up_to_the_cap(dovecot, protocol, monkeypatch):
    monkeypatch.setattr(mailbox_sessions, "MAX_MESSAGE_BYTES", 1000)
    raw = message(1, size=5000)
    dovecot.deliver(raw)

    (item,) = read_all(make_mailbox(dovecot, protocol))

    assert item.raw == raw[:1000]
    assert dovecot.stored() == []


@pytest.mark.django_db
def test_imap_reads_messages_a_group_at_a_time_in_order_by_count_and_by_size(dovecot, monkeypatch):
    monkeypatch.setattr(mailbox_sessions.ImapSession, "FETCH_MESSAGES", 3)
    monkeypatch.setattr(mailbox_sessions.ImapSession, "FETCH_BYTES", 3000)
    raws = [message(n, size=1000 if n != 4 else 5000) for n in range(8)]
    for raw in raws:
        dovecot.deliver(raw)
    mailbox = make_mailbox(dovecot)
    fetches = []
    fetch_many = mailbox_sessions.ImapSession.fetch_many

    def counted(session, keys):
        fetches.append(len(keys))
        return fetch_many(session, keys)

    monkeypatch.setattr(mailbox_sessions.ImapSession, "fetch_many", counted)

    assert [item.raw for item in read_all(mailbox)] == raws
    # Groups of 3 by count; within them, runs of about 3,000 bytes; the 5,000-byte message alone.
    assert fetches == [2, 1, 1, 1, 1, 2]
    assert dovecot.stored() == []


@pytest.mark.django_db
def test_a_message_gone_between_the_list_and_the_fetch_is_skipped(dovecot):
    for n in range(3):
        dovecot.deliver(message(n))
    mailbox = make_mailbox(dovecot)
    session = mailbox_sessions.connect(mailbox)
    keys = session.keys()
    other = mailbox_sessions.connect(mailbox)  # another client removes the second one meanwhile
    other.remove(keys[1])
    other.close()

    assert [item.raw for item in session.messages(keys)] == [message(0), message(2)]
    session.close()


@pytest.mark.django_db
@pytest.mark.parametrize("protocol", ["imap", "pop3"])
def test_memory_stays_flat_whatever_the_mailbox_holds(dovecot, protocol):
    """1,000 messages of 20 KB (20 MB in all) are read holding about one message at a time (POP3) or
    one UID FETCH's group of at most ImapSession.FETCH_BYTES (1 MB)."""
    count, size = 1000, 20_000
    for n in range(count):
        dovecot.deliver(message(n, size=size))
    mailbox = make_mailbox(dovecot, protocol)

    tracemalloc.start()
    try:
        read = 0
        with open_mailbox(mailbox) as reader:
            for item in reader.messages():
                read += 1
                reader.done(item.key)
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert read == count
    assert peak < 2_000_000, f"peak {peak} bytes while reading {count * size} bytes of messages"
    assert dovecot.stored() == []


@pytest.mark.django_db
@pytest.mark.parametrize("protocol", ["imap", "pop3"])
def test_the_mailbox_test_says_how_many_wait_and_changes_nothing(dovecot, protocol):
    dovecot.deliver(message(1))
    dovecot.deliver(message(2))
    mailbox = make_mailbox(dovecot, protocol)

    services.run_mailbox_test(mailbox_id=mailbox.pk)

    mailbox.refresh_from_db()
    assert mailbox.last_test_result.startswith("OK: Logged in; 2 message(s) waiting in ")
    assert len(dovecot.stored()) == 2
    assert mailbox.processed_count == 0


@pytest.mark.django_db
def test_a_failed_mailbox_test_says_why(dovecot):
    mailbox = make_mailbox(dovecot, password="wrong")

    services.run_mailbox_test(mailbox_id=mailbox.pk)

    mailbox.refresh_from_db()
    assert mailbox.last_test_result.startswith("Failed: The server refused the login")
