"""A link asked over HTTP from a worker (delivery.link_probe), against a real HTTP server on a free port,
and what each answer means for the marketer (delivery.link_check.verdict).

The tests' settings allow private hosts (tests/conftest.py), as `make run` does, so a server on
127.0.0.1 can be reached; the guard's tests turn that off, as in production."""

import pytest
from django.test import override_settings

from campaigns.models import LinkCheckResult
from delivery import link_probe
from delivery.link_check import verdict
from delivery.link_probe import Failure
from sending import smtp
from tests.http_server import http_server_factory  # noqa: F401  (pytest fixture)
from tests.smtp_server import tls_files  # noqa: F401  (pytest fixture)

OK, WARNING, ERROR = LinkCheckResult.Level.OK, LinkCheckResult.Level.WARNING, LinkCheckResult.Level.ERROR


@pytest.fixture
def server(http_server_factory):
    return http_server_factory()


def test_a_page_that_answers_200_is_fine_and_asked_with_head_only(server):
    probe = link_probe.probe(server.url("/ok?a=1"))

    assert (probe.status_code, probe.final_url, probe.redirects, probe.method) == (
        200,
        server.url("/ok?a=1"),
        0,
        "HEAD",
    )
    assert verdict(probe) == (OK, "Reaches the page.")
    ((method, path, headers),) = server.requests
    assert (method, path) == ("HEAD", "/ok?a=1")
    assert headers["Host"] == f"127.0.0.1:{server.port}"
    assert headers["User-Agent"].startswith("CampaignManager-LinkCheck/1.0 (checks the links of an email")


def test_a_missing_page_is_an_error_for_the_marketer(server):
    probe = link_probe.probe(server.url("/missing"))

    assert probe.status_code == 404
    assert verdict(probe) == (ERROR, "The link answers 404 Not Found.")


def test_a_server_error_is_an_error(server):
    assert verdict(link_probe.probe(server.url("/broken"))) == (ERROR, "The link answers 500 Internal Server Error.")


def test_too_many_requests_is_a_warning_not_a_verdict_on_the_page(server):
    level, message = verdict(link_probe.probe(server.url("/limited")))

    assert level == WARNING
    assert message.startswith("The site answers 429 Too Many Requests: it limits automated requests.")


def test_a_server_refusing_head_is_asked_again_with_get(server):
    probe = link_probe.probe(server.url("/head-refused"))

    assert (probe.status_code, probe.method) == (200, "GET")
    assert [(m, p) for m, p, _h in server.requests] == [("HEAD", "/head-refused"), ("GET", "/head-refused")]


def test_a_redirect_chain_is_followed_to_its_end(server):
    probe = link_probe.probe(server.url("/chain/3"))

    assert (probe.status_code, probe.redirects, probe.final_url) == (200, 3, server.url("/chain/0"))
    assert verdict(probe) == (OK, f"Reaches the page after 3 redirects, at {server.url('/chain/0')}.")
    assert server.paths() == ["/chain/3", "/chain/2", "/chain/1", "/chain/0"]


def test_a_redirect_to_a_missing_page_is_an_error_naming_where_it_led(server):
    probe = link_probe.probe(server.url("/to?url=/missing"))

    assert verdict(probe) == (ERROR, f"The link answers 404 Not Found after 1 redirect, at {server.url('/missing')}.")


@override_settings(LINK_CHECK_MAX_REDIRECTS=5)
def test_redirects_stop_at_the_limit(server):
    probe = link_probe.probe(server.url("/loop"))

    assert (probe.failure, probe.redirects) == (Failure.REDIRECTS, 5)
    assert len(server.paths()) == 6  # the link and five redirects, no more
    level, message = verdict(probe)
    assert level == WARNING and message.startswith("Not checked to the end: more than 5 redirects")


@override_settings(LINK_CHECK_MAX_REDIRECTS=5)
def test_five_redirects_are_within_the_limit(server):
    assert link_probe.probe(server.url("/chain/5")).status_code == 200


@override_settings(LINK_CHECK_TIMEOUT_SECONDS=0.5)
def test_a_page_slower_than_the_timeout_is_a_warning(server):
    probe = link_probe.probe(server.url("/slow"))

    assert probe.failure is Failure.TIMEOUT and probe.status_code is None
    assert verdict(probe) == (
        WARNING,
        "No answer within 0.5 s: the site may be slow or block automated checks. Open the link yourself.",
    )


def test_a_refused_connection_is_a_warning(server):
    port = server.port
    server.stop()

    probe = link_probe.probe(f"http://127.0.0.1:{port}/ok")

    assert probe.failure is Failure.CONNECTION
    level, message = verdict(probe)
    assert level == WARNING
    assert message == (
        "No answer: the connection failed (Connection refused); the site may be down or block automated checks. "
        "Open the link yourself."
    )


def test_a_host_that_does_not_resolve_is_a_warning():
    probe = link_probe.probe("http://no-such-host.invalid/page")

    assert probe.failure is Failure.DNS
    level, message = verdict(probe)
    assert level == WARNING
    assert message.startswith("No answer: the host no-such-host.invalid does not resolve (")
    assert message.endswith(". Check its spelling. Open the link yourself.")


def test_a_redirect_to_another_scheme_is_not_followed(server):
    probe = link_probe.probe(server.url("/to?url=ftp://files.example.com/a"))

    assert probe.failure is Failure.INVALID and probe.redirects == 1
    assert verdict(probe) == (
        WARNING,
        "Not checked (after 1 redirect, at ftp://files.example.com/a): the link leads to a ftp URL, not a web page. "
        "Open the link yourself.",
    )


# --- the destination guard, as in production ----------------------------------------------------


@pytest.fixture
def production_guard(server):
    # The server's port counts as a web port here, so only the address rule stands in the way.
    with override_settings(SMTP_ALLOW_PRIVATE_HOSTS=False, LINK_CHECK_ALLOWED_PORTS=(80, 443, server.port)):
        yield


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_the_guard_refuses_a_private_address_and_nothing_is_asked(server, production_guard, host):
    probe = link_probe.probe(f"http://{host}:{server.port}/ok")

    assert probe.failure is Failure.GUARD
    assert server.requests == []
    level, message = verdict(probe)
    assert level == WARNING
    assert message == (
        f"Not checked: The HTTP host {host!r} resolves to a private, loopback or reserved address (127.0.0.1); "
        "this is not allowed. Ask your administrator if the link is right."
    )


def test_the_guard_refuses_a_port_other_than_the_web_ports(server):
    with override_settings(SMTP_ALLOW_PRIVATE_HOSTS=False):
        probe = link_probe.probe(server.url("/ok"))

    assert probe.failure is Failure.GUARD
    assert probe.detail == f"Port {server.port} is not allowed for HTTP; use one of 80, 443, 8080, 8443."
    assert server.requests == []


@pytest.fixture
def first_hop_public(monkeypatch, server):
    """This machine has no public address to serve from: the guard's rule is kept, except that the
    server's exact address counts as public, so the first hop passes and a redirect's is judged."""
    real = smtp._is_public
    monkeypatch.setattr(smtp, "_is_public", lambda address: address == server.host or real(address))


def test_a_redirect_to_a_private_address_is_refused_before_any_request(
    server, http_server_factory, production_guard, first_hop_public
):
    inside = http_server_factory(host="127.0.0.2")  # loopback, but not the first hop's address
    secret = f"http://127.0.0.2:{inside.port}/secret"

    with override_settings(LINK_CHECK_ALLOWED_PORTS=(server.port, inside.port)):
        probe = link_probe.probe(server.url(f"/to?url={secret}"))

    assert server.paths() == [f"/to?url={secret}"]
    assert inside.requests == []
    assert (probe.failure, probe.redirects, probe.final_url) == (Failure.GUARD, 1, secret)
    level, message = verdict(probe)
    assert level == WARNING
    assert message.startswith(f"Not checked (after 1 redirect, at {secret}): The HTTP host '127.0.0.2' resolves")


def test_the_same_redirect_is_followed_when_private_hosts_are_allowed(server, http_server_factory):
    # The control for the test above: the guard, not the setup, kept the inside server untouched.
    inside = http_server_factory(host="127.0.0.2")
    secret = f"http://127.0.0.2:{inside.port}/secret"

    probe = link_probe.probe(server.url(f"/to?url={secret}"))

    assert (probe.status_code, probe.final_url) == (200, secret)
    assert inside.paths() == ["/secret"]


def test_the_connection_goes_to_the_address_the_guard_checked(server, monkeypatch):
    """Resolved once: a name that would resolve elsewhere at connect time (DNS rebinding) is not
    asked again; the request goes to the checked address with the link's host in the Host header."""
    resolved = []
    real = smtp.resolve_destination

    def recording(host, port, **kwargs):
        resolved.append(host)
        return real(host, port, **kwargs)

    monkeypatch.setattr(smtp, "resolve_destination", recording)

    probe = link_probe.probe(f"http://localhost:{server.port}/chain/1")

    assert probe.status_code == 200
    assert resolved == ["localhost", "localhost"]  # once per hop, by the guard alone
    assert [h["Host"] for _m, _p, h in server.requests] == [f"localhost:{server.port}"] * 2


# --- HTTPS: connected to the checked address, verified against the link's host -----------------------


@pytest.fixture
def https_server(http_server_factory, tls_files, settings):
    settings.SMTP_CA_FILE = str(tls_files.ca_file)  # the link check trusts what SMTP trusts
    return http_server_factory("localhost", tls=tls_files.server_context())


def test_an_https_link_is_verified_against_its_host_name(https_server):
    probe = link_probe.probe(https_server.url("/chain/1"))

    assert (probe.status_code, probe.redirects) == (200, 1)
    assert [h["Host"] for _m, _p, h in https_server.requests] == [f"localhost:{https_server.port}"] * 2


def test_a_certificate_for_another_name_is_a_warning(https_server):
    probe = link_probe.probe(f"https://127.0.0.1:{https_server.port}/ok")  # the certificate names localhost

    assert probe.failure is Failure.TLS
    level, message = verdict(probe)
    assert level == WARNING
    assert message == (
        "No answer: the TLS connection failed (hostname '127.0.0.1' doesn't match 'localhost'); "
        "readers' browsers may warn too. Open the link yourself."
    )
    assert https_server.requests == []


def test_a_certificate_from_an_unknown_authority_is_a_warning(https_server, settings):
    settings.SMTP_CA_FILE = ""

    probe = link_probe.probe(https_server.url("/ok"))

    assert probe.failure is Failure.TLS
    assert "certificate verify failed" in probe.detail
