"""The destination guard: marketers' SMTP accounts may not reach internal hosts or non-mail ports."""

import socket

import pytest
from django.contrib import messages
from django.test import override_settings

from sending import smtp
from sending.models import SmtpAccountState
from tests.factories import SmtpAccountFactory
from tests.sending.test_smtp_connection import run_test_connection_action
from tests.smtp_server import smtp_server_factory  # noqa: F401  (pytest fixture)

pytestmark = pytest.mark.usefixtures("production_guard")

PRIVATE_HOSTS = [
    "127.0.0.1",
    "127.1.2.3",
    "localhost",
    "::1",
    "10.0.0.5",
    "192.168.1.1",
    "172.16.0.1",
    "169.254.169.254",  # cloud metadata
    "0.0.0.0",
    "::ffff:127.0.0.1",  # IPv4-mapped loopback
    "::ffff:10.0.0.5",
    "100.64.0.1",  # carrier-grade NAT
    "fd00::1",  # unique local
    "fe80::1",  # link-local
    "::",
    "224.0.0.1",  # multicast
    "0x7f000001",  # 127.0.0.1 spelled as one hex number
]

# IPv6 forms carrying a private IPv4 address, which Python 3.11's ipaddress calls global.
EMBEDDED_PRIVATE_IPV4 = [
    "2002:7f00:1::",  # 6to4 of 127.0.0.1
    "2002:a00:5::1",  # 6to4 of 10.0.0.5
    "2002:a9fe:a9fe::",  # 6to4 of 169.254.169.254 (cloud metadata)
    "64:ff9b::7f00:1",  # NAT64 of 127.0.0.1
    "64:ff9b::a9fe:a9fe",  # NAT64 of 169.254.169.254
    "64:ff9b::c0a8:101",  # NAT64 of 192.168.1.1
    "64:ff9b:1::a00:5",  # local-use NAT64 (RFC 8215)
    "64:ff9b:1::808:808",  # local-use NAT64, whatever it carries: never global
    "::127.0.0.1",  # IPv4-compatible
    "::10.0.0.5",
    "::169.254.169.254",
    "2001:0:4136:e378:8000:63bf:80ff:fffe",  # Teredo, client 127.0.0.1
    "2001:0:a00:5::1",  # Teredo, relay 10.0.0.5
]


@pytest.fixture
def production_guard():
    with override_settings(SMTP_ALLOW_PRIVATE_HOSTS=False, SMTP_ALLOWED_PORTS=(25, 465, 587, 2525)):
        yield


def _can_resolve(host):
    try:
        socket.getaddrinfo(host, 587, type=socket.SOCK_STREAM)
    except socket.gaierror:
        return False
    return True


@pytest.mark.parametrize("host", PRIVATE_HOSTS)
def test_private_loopback_and_reserved_addresses_are_refused(host):
    # A resolver that cannot parse an odd spelling refuses it too, as unresolvable.
    expected = "private, loopback or reserved address" if _can_resolve(host) else "Cannot resolve"
    with pytest.raises(smtp.SmtpDestinationError, match=expected):
        smtp.resolve_destination(host, 587)


@pytest.mark.parametrize("port", [22, 80, 6379, 5432, 1025, 8025, 0, 65535])
def test_ports_other_than_the_mail_ports_are_refused(port):
    expected = f"Port {port} is not allowed for SMTP; use one of 25, 465, 587, 2525"
    with pytest.raises(smtp.SmtpDestinationError, match=expected):
        smtp.resolve_destination("8.8.8.8", port)


@pytest.mark.parametrize("port", [25, 465, 587, 2525])
def test_a_public_ip_literal_on_a_mail_port_is_accepted(port):
    # IP literals need no DNS.
    assert smtp.resolve_destination("8.8.8.8", port) == "8.8.8.8"
    assert smtp.resolve_destination(" 8.8.8.8 ", port) == "8.8.8.8"


def test_a_public_ipv6_literal_is_accepted():
    assert smtp.resolve_destination("2001:4860:4860::8888", 587) == "2001:4860:4860::8888"


@pytest.mark.parametrize("host", EMBEDDED_PRIVATE_IPV4)
def test_ipv6_forms_of_private_ipv4_addresses_are_refused(host):
    with pytest.raises(smtp.SmtpDestinationError, match="private, loopback or reserved address"):
        smtp.resolve_destination(host, 587)


@pytest.mark.parametrize("host", ["2002:808:808::1", "64:ff9b::808:808", "::ffff:8.8.8.8"])
def test_ipv6_forms_of_a_public_ipv4_address_are_accepted(host):
    # The control for the refusals above: the address inside, not the form, decides.
    assert smtp.resolve_destination(host, 587) == host


def test_empty_host_is_refused():
    with pytest.raises(smtp.SmtpDestinationError, match="host is empty"):
        smtp.resolve_destination("  ", 587)


def test_development_setting_allows_loopback_and_any_port():
    with override_settings(SMTP_ALLOW_PRIVATE_HOSTS=True):
        assert smtp.resolve_destination("127.0.0.1", 1025) == "127.0.0.1"
        assert smtp.resolve_destination("localhost", 8025) == "127.0.0.1"


# --- the admin action refuses before connecting ---------------------------------------------------


def assert_no_connection_reached(server):
    # A probe of our own must be counted as the first and only connection: any
    # earlier one (from the action) was accepted before it and would show here too.
    with socket.create_connection((server.host, server.port), timeout=5):
        server.handler.wait_for(lambda h: h.connections >= 1)
    assert server.handler.connections == 1


def test_action_refuses_a_non_mail_port_and_never_connects(marketer, marketer_client, smtp_server_factory):
    server = smtp_server_factory()
    account = SmtpAccountFactory(owner=marketer, name="Sink", host=server.host, port=server.port, security="none")

    reported = run_test_connection_action(marketer_client, account)

    assert reported == [
        (messages.ERROR, f"Sink: Port {server.port} is not allowed for SMTP; use one of 25, 465, 587, 2525.")
    ]
    assert_no_connection_reached(server)
    account.refresh_from_db()
    assert account.state.last_test_result.startswith("Failed: Port ")
    assert account.state.last_tested_at is not None


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_action_refuses_loopback_on_an_allowed_port_and_never_connects(
    host, marketer, marketer_client, smtp_server_factory
):
    server = smtp_server_factory()
    account = SmtpAccountFactory(owner=marketer, name="Loop", host=host, port=server.port, security="none")

    # The server's port counts as a mail port here, so only the address check stands in the way.
    with override_settings(SMTP_ALLOWED_PORTS=(server.port,)):
        reported = run_test_connection_action(marketer_client, account)

    assert reported == [
        (
            messages.ERROR,
            f"Loop: The SMTP host {host!r} resolves to a private, loopback or reserved address (127.0.0.1); "
            "this is not allowed.",
        )
    ]
    assert_no_connection_reached(server)
    assert SmtpAccountState.objects.get(account=account).last_test_result.startswith("Failed: The SMTP host")


def test_same_account_does_connect_when_private_hosts_are_allowed(marketer, marketer_client, smtp_server_factory):
    # The control for the tests above: the refusal, not the setup, kept the server untouched.
    server = smtp_server_factory()
    account = SmtpAccountFactory(
        owner=marketer, name="Sink", host=server.host, port=server.port, security="none", username=""
    )

    with override_settings(SMTP_ALLOW_PRIVATE_HOSTS=True):
        reported = run_test_connection_action(marketer_client, account)

    assert reported == [(messages.SUCCESS, "Sink: 250 OK")]
    assert server.handler.connections == 1
