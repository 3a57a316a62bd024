"""An SMTP account's tracking domain: what the form accepts, the check against this site served for
real (the live server, on a name /etc/hosts resolves to it), what the account page says."""

import http.server
import os
import threading
import urllib.error
import urllib.request
from urllib.parse import urlsplit

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from delivery import message
from sending import tracking_domains
from sending.models import SmtpAccount
from tests.dns_server import dns_server  # noqa: F401  (the fixture)
from tests.factories import MarketerFactory, SmtpAccountFactory
from tests.isolation import free_port
from tests.sending.test_smtp_password import change_url, form_data


@pytest.mark.parametrize(
    ("typed", "stored"),
    [
        ("links.example.com", "links.example.com"),
        ("  Links.Example.COM. ", "links.example.com"),
        ("bücher.example", "xn--bcher-kva.example"),
        ("", ""),
    ],
)
def test_a_host_name_is_stored_lower_case_and_in_ascii(typed, stored):
    assert tracking_domains.normalized(typed) == stored


@pytest.mark.parametrize(
    "typed",
    [
        "https://links.example.com",
        "links.example.com/path",
        "links.example.com:8080",
        "user@links.example.com",
        "links example.com",
        "localhost",
        "192.168.1.10",
        "-bad-.example.com",
        "a" * 64 + ".example.com",
        "mail.example.net",  # the site's own host
        "127.0.0.1",
    ],
)
def test_anything_but_another_host_name_is_refused(settings, typed):
    settings.SITE_URL = "https://mail.example.net"
    with pytest.raises(ValidationError):
        tracking_domains.normalized(typed)


def test_the_form_stores_the_name_and_a_new_name_is_checked_again(marketer, marketer_client):
    account = SmtpAccountFactory(
        owner=marketer, tracking_domain="links.old.example", tracking_domain_verified_at=timezone.now()
    )

    unchanged = marketer_client.post(change_url(account), form_data(account, tracking_domain="LINKS.old.example"))
    account.refresh_from_db()
    assert unchanged.status_code == 302 and account.tracking_domain_verified_at is not None

    changed = marketer_client.post(change_url(account), form_data(account, tracking_domain="Links.New.Example"))
    account.refresh_from_db()
    assert changed.status_code == 302
    assert account.tracking_domain == "links.new.example" and account.tracking_domain_verified_at is None
    assert message.tracking_site(account) != "http://links.new.example"


def test_the_form_refuses_a_url_and_another_accounts_name_keeping_what_was_typed(marketer, marketer_client):
    SmtpAccountFactory(owner=MarketerFactory(), tracking_domain="links.taken.example")
    account = SmtpAccountFactory(owner=marketer)

    as_url = marketer_client.post(change_url(account), form_data(account, tracking_domain="https://x.example/a"))
    taken = marketer_client.post(change_url(account), form_data(account, tracking_domain="links.taken.example"))

    assert as_url.status_code == 200 and "no http://, path, port" in as_url.content.decode()
    assert (
        taken.status_code == 200 and "Another SMTP account already uses this tracking domain" in taken.content.decode()
    )
    account.refresh_from_db()
    assert account.tracking_domain == ""


def test_the_page_says_plainly_which_address_messages_use(marketer, marketer_client, settings):
    account = SmtpAccountFactory(owner=marketer)
    assert "None set." in marketer_client.get(change_url(account)).content.decode()

    account.tracking_domain = "links.mine.example"
    account.save()
    page = marketer_client.get(change_url(account)).content.decode()
    assert "Not checked yet." in page and f"messages use <code>{settings.SITE_URL}</code>" in page
    assert "links.mine.example. 3600 IN A 127.0.0.1" in page  # SITE_URL names an address here
    site_url, settings.SITE_URL = settings.SITE_URL, "https://mail.example.net"
    assert (
        "links.mine.example. 3600 IN CNAME mail.example.net."
        in marketer_client.get(change_url(account)).content.decode()
    )
    settings.SITE_URL = site_url

    account.tracking_domain_error = "http://links.mine.example/ could not be reached: refused."
    account.tracking_domain_checked_at = timezone.now()
    account.save()
    page = marketer_client.get(change_url(account)).content.decode()
    assert "Check failed" in page and "could not be reached: refused." in page
    assert f"messages use <code>{settings.SITE_URL}</code>" in page

    account.tracking_domain_verified_at = timezone.now()
    account.save()
    page = marketer_client.get(change_url(account)).content.decode()
    assert "Verified" in page and "://links.mine.example" in page and "Until a check passes" not in page


# --- the check, against this site served for real ---------------------------------------------------


@pytest.fixture
def local_name():
    """A name of our own that resolves to 127.0.0.1, written into /etc/hosts for this test only."""
    name = f"links-{os.getpid()}.trackdomain.test"
    try:
        with open("/etc/hosts") as hosts:
            original = hosts.read()
        with open("/etc/hosts", "a") as hosts:
            hosts.write(f"\n127.0.0.1 {name}\n")
    except OSError as exc:
        pytest.skip(f"/etc/hosts is not writable here: {exc}")
    try:
        yield name
    finally:
        with open("/etc/hosts", "w") as hosts:
            hosts.write(original)


@pytest.fixture
def local_dns(settings, dns_server):
    """DNS from the tests' own server (which knows no CNAME): the check's advice, asked for real."""
    settings.DKIM_DNS_NAMESERVERS, settings.DKIM_DNS_PORT = ["127.0.0.1"], dns_server.port


@pytest.fixture
def site(live_server, settings, local_dns):
    """SITE_URL on the live server's address."""
    settings.SITE_URL = f"http://127.0.0.1:{urlsplit(live_server.url).port}"
    return settings.SITE_URL


def check_url(account):
    return change_url(account).replace("/change/", "/tracking-domain/")


# Committed, for the live server's thread to read; serialized_rollback puts back the Marketers group.
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_the_check_button_verifies_a_name_that_reaches_this_site(site, local_name, client):
    marketer = MarketerFactory()
    client.force_login(marketer)
    account = SmtpAccountFactory(owner=marketer, tracking_domain=local_name)

    response = client.post(check_url(account), follow=True)

    account.refresh_from_db()
    assert account.tracking_domain_verified_at is not None and account.tracking_domain_error == ""
    page = response.content.decode()
    assert "Tracking domain verified" in page and "resolves to 127.0.0.1" in page
    base = message.tracking_site(account)
    assert base == f"http://{local_name}:{urlsplit(site).port}"
    # The live server now serves the name for the tracking URLs only.
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(base + "/admin/login/", timeout=10)
    assert refused.value.code == 404
    with urllib.request.urlopen(base + "/t/u/preview/", timeout=10) as preview:
        assert preview.status == 200


@pytest.mark.django_db
def test_a_name_that_does_not_reach_this_site_fails_and_messages_keep_site_url(local_dns, local_name, settings):
    """A server of someone else's on the name, answering every URL with the URL itself, is not us."""

    class Echo(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = self.path.encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    echo = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Echo)
    threading.Thread(target=echo.serve_forever, daemon=True).start()
    try:
        account = SmtpAccountFactory(tracking_domain=local_name, tracking_domain_verified_at=timezone.now())
        settings.SITE_URL = f"http://127.0.0.1:{echo.server_address[1]}"  # the check goes to the echo's port
        result = tracking_domains.check(account=account, now=timezone.now())
    finally:
        echo.shutdown()
        echo.server_close()

    account.refresh_from_db()
    assert not result.verified and "not as this site" in result.detail
    assert account.tracking_domain_verified_at is None and "not as this site" in account.tracking_domain_error
    assert message.tracking_site(account) == settings.SITE_URL


@pytest.mark.django_db
def test_a_name_nothing_answers_on_fails_with_the_reason(local_dns, local_name, settings):
    account = SmtpAccountFactory(tracking_domain=local_name)
    settings.SITE_URL = f"http://127.0.0.1:{free_port()}"
    result = tracking_domains.check(account=account, now=timezone.now())

    account.refresh_from_db()
    assert not result.verified and "could not be reached" in result.detail
    assert account.tracking_domain_checked_at is not None and account.tracking_domain_verified_at is None


@pytest.mark.django_db
def test_the_guard_refuses_a_name_on_a_private_address(local_dns, local_name, settings):
    settings.SMTP_ALLOW_PRIVATE_HOSTS = False
    settings.SITE_URL = "https://mail.example.net"
    account = SmtpAccountFactory(tracking_domain=local_name)

    result = tracking_domains.check(account=account, now=timezone.now())

    assert not result.verified and "private, loopback or reserved" in result.detail


def test_another_owners_check_button_is_a_404(marketer_client):
    account = SmtpAccountFactory(owner=MarketerFactory(), tracking_domain="links.other.example")

    assert marketer_client.post(check_url(account)).status_code == 404
    assert SmtpAccount.objects.get(pk=account.pk).tracking_domain_checked_at is None
