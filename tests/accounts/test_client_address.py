"""accounts.client_address: who a request came from, as rate limits and login lockouts count it."""

import pytest
from django.test import RequestFactory, override_settings

from accounts.client_address import client_ip, lockout_address, rate_limit_key

PROXIES = ["10.0.0.0/8", "192.0.2.7"]


def request_from(remote_addr, forwarded_for=None):
    extra = {"REMOTE_ADDR": remote_addr}
    if forwarded_for is not None:
        extra["HTTP_X_FORWARDED_FOR"] = forwarded_for
    return RequestFactory().get("/", **extra)


# --- REMOTE_ADDR only ------------------------------------------------------------------------------


@override_settings(TRUSTED_PROXIES=[])
def test_without_trusted_proxies_the_client_is_remote_addr():
    assert client_ip(request_from("203.0.113.5")) == "203.0.113.5"
    assert rate_limit_key(request_from("203.0.113.5")) == "203.0.113.5"
    assert lockout_address(request_from("203.0.113.5")) == "203.0.113.5"


@override_settings(TRUSTED_PROXIES=[])
def test_without_trusted_proxies_a_forwarded_header_is_ignored():
    request = request_from("203.0.113.5", forwarded_for="198.51.100.1")
    assert client_ip(request) == "203.0.113.5"
    assert rate_limit_key(request) == "203.0.113.5"


@override_settings(TRUSTED_PROXIES=[])
def test_no_usable_address_shares_one_named_bucket():
    request = request_from("")
    assert client_ip(request) == ""
    assert rate_limit_key(request) == "unknown"
    assert lockout_address(request) is None


# --- behind trusted proxies ------------------------------------------------------------------------


@override_settings(TRUSTED_PROXIES=PROXIES)
def test_the_client_is_the_first_untrusted_hop_from_the_right():
    # client -> 10.1.1.1 (trusted load balancer) -> 192.0.2.7 (trusted nginx) -> Django
    request = request_from("192.0.2.7", forwarded_for="198.51.100.1, 203.0.113.9, 10.1.1.1")
    assert client_ip(request) == "203.0.113.9"
    assert rate_limit_key(request) == "203.0.113.9"
    assert lockout_address(request) == "203.0.113.9"


@override_settings(TRUSTED_PROXIES=PROXIES)
def test_a_client_cannot_choose_its_bucket_through_a_trusted_proxy():
    # The client wrote "1.2.3.4" itself; the trusted proxy appended the address it saw.
    request = request_from("10.2.2.2", forwarded_for="1.2.3.4, 203.0.113.9")
    assert client_ip(request) == "203.0.113.9"


@override_settings(TRUSTED_PROXIES=PROXIES)
def test_a_spoofed_header_from_an_untrusted_client_is_ignored():
    request = request_from("203.0.113.5", forwarded_for="10.1.1.1, 198.51.100.1")
    assert client_ip(request) == "203.0.113.5"
    assert rate_limit_key(request) == "203.0.113.5"
    assert lockout_address(request) == "203.0.113.5"


@override_settings(TRUSTED_PROXIES=PROXIES)
def test_only_trusted_hops_give_the_leftmost():
    request = request_from("192.0.2.7", forwarded_for="10.3.3.3, 10.1.1.1")
    assert client_ip(request) == "10.3.3.3"


@override_settings(TRUSTED_PROXIES=PROXIES)
def test_garbage_in_the_header_falls_back_to_the_proxy():
    request = request_from("192.0.2.7", forwarded_for="not-an-address")
    assert client_ip(request) == "192.0.2.7"


@override_settings(TRUSTED_PROXIES=PROXIES)
def test_a_trusted_proxy_without_a_header_is_the_client():
    assert client_ip(request_from("10.1.1.1")) == "10.1.1.1"


# --- IPv6: one /64 is one client -------------------------------------------------------------------


@override_settings(TRUSTED_PROXIES=[])
@pytest.mark.parametrize("address", ["2001:db8:1:2::1", "2001:db8:1:2:ffff:ffff:ffff:fffe"])
def test_an_ipv6_client_is_counted_by_its_64(address):
    assert rate_limit_key(request_from(address)) == "2001:db8:1:2::/64"
    assert lockout_address(request_from(address)) == "2001:db8:1:2::"


@override_settings(TRUSTED_PROXIES=[])
def test_neighbouring_ipv6_64s_are_different_clients():
    assert rate_limit_key(request_from("2001:db8:1:3::1")) != rate_limit_key(request_from("2001:db8:1:2::1"))


@override_settings(TRUSTED_PROXIES=["2001:db8:ffff::/48"])
def test_an_ipv6_client_behind_an_ipv6_proxy():
    request = request_from("2001:db8:ffff::10", forwarded_for="2001:db8:1:2:abcd::99")
    assert client_ip(request) == "2001:db8:1:2:abcd::99"
    assert rate_limit_key(request) == "2001:db8:1:2::/64"


@override_settings(TRUSTED_PROXIES=[])
def test_an_ipv4_mapped_ipv6_address_is_its_ipv4_address():
    assert rate_limit_key(request_from("::ffff:203.0.113.5")) == "203.0.113.5"
    assert lockout_address(request_from("::ffff:203.0.113.5")) == "203.0.113.5"
