"""An account's verified tracking domain is served for the tracking URLs only, and only for that
account's emails; every other path on it is a 404, and any other host is refused as before (400)."""

import pytest
from django.test import Client
from django.utils import timezone

from campaigns.models import Email
from sending import tracking_domains
from tests.factories import CampaignFactory, ContactFactory, EmailFactory, MarketerFactory, SmtpAccountFactory
from tests.tracking.conftest import READER_UA
from tracking import tokens
from tracking.models import Event, Link

DOMAIN = "links.olga.example"
OTHER_DOMAIN = "go.mallory.example"


@pytest.fixture
def account(owner, sent_email):
    account = SmtpAccountFactory(owner=owner, tracking_domain=DOMAIN, tracking_domain_verified_at=timezone.now())
    sent_email.campaign.smtp_account = account
    sent_email.campaign.save(update_fields=["smtp_account"])
    return account


@pytest.fixture
def on_domain(account):
    """A mail client with no cookies, following links on the account's tracking domain."""
    return Client(enforce_csrf_checks=True, HTTP_HOST=DOMAIN, HTTP_USER_AGENT=READER_UA)


@pytest.fixture
def link(sent_email):
    return Link.objects.create(campaign=sent_email.campaign, url="https://bakery.example/bread")


def test_the_pixel_a_click_and_the_unsubscribe_pages_work_on_the_verified_domain(on_domain, sent_email, link):
    pixel = on_domain.get(f"/t/o/{tokens.open_token(sent_email.pk)}.gif")
    click = on_domain.get(f"/t/c/{tokens.click_token(sent_email.pk, link.pk)}/")
    page = on_domain.get(f"/t/u/{tokens.unsubscribe_token(sent_email.pk)}/")
    # The RFC 8058 one-click POST: no cookie, no CSRF token, another origin.
    one_click = on_domain.post(
        f"/t/u/{tokens.unsubscribe_token(sent_email.pk)}/", {"List-Unsubscribe": "One-Click"}, HTTP_ORIGIN="null"
    )

    assert pixel.status_code == 200 and pixel["Content-Type"] == "image/gif"
    assert click.status_code == 302 and click["Location"] == link.url
    assert page.status_code == 200 and b"Olga&#x27;s Bakery" in page.content
    assert one_click.status_code == 200
    sent_email.refresh_from_db()
    assert sent_email.open_count == 1 and sent_email.click_count == 1 and sent_email.unsubscribed_at is not None
    assert set(Event.objects.filter(email=sent_email).values_list("kind", flat=True)) == {
        Event.Kind.OPEN,
        Event.Kind.CLICK,
        Event.Kind.UNSUBSCRIBE,
    }


@pytest.mark.parametrize(
    "path",
    [
        "/admin/",
        "/admin/login/",
        "/admin/password_reset/",
        "/accounts/signup/",
        "/esp/abcdefghijklmnopqrstuvwx/",
        "/s/sometoken/",
        "/",
        "/t/domain-allowed?domain=" + DOMAIN,
        "/t/nothing/",
    ],
)
def test_every_other_path_on_the_tracking_domain_is_a_404(on_domain, path):
    assert on_domain.get(path).status_code == 404
    assert on_domain.post(path).status_code == 404


def test_an_unknown_or_unverified_host_is_refused_as_before(account, sent_email):
    token_path = f"/t/u/{tokens.unsubscribe_token(sent_email.pk)}/"
    unverified = SmtpAccountFactory(tracking_domain="links.unverified.example")

    for host in ("evil.example", unverified.tracking_domain):
        client = Client(HTTP_HOST=host)
        assert client.get(token_path).status_code == 400
        assert client.get("/admin/login/").status_code == 400


def test_the_site_host_still_serves_everything(account, sent_email):
    assert Client().get("/admin/login/").status_code == 200
    assert Client().get(f"/t/u/{tokens.unsubscribe_token(sent_email.pk)}/").status_code == 200


def test_another_accounts_tokens_do_not_work_on_a_tracking_domain(account, sent_email, link):
    """Mallory's verified domain serves Mallory's emails only: Olga's tokens there are a 404 and
    record nothing, while they still work on Olga's domain."""
    mallory = MarketerFactory(username="mallory")
    mallory_account = SmtpAccountFactory(
        owner=mallory, tracking_domain=OTHER_DOMAIN, tracking_domain_verified_at=timezone.now()
    )
    mallory_email = EmailFactory(
        campaign=CampaignFactory(owner=mallory, smtp_account=mallory_account),
        contact=ContactFactory(owner=mallory),
        status=Email.Status.SENT,
        sent_at=sent_email.sent_at,
    )
    on_other = Client(HTTP_HOST=OTHER_DOMAIN, HTTP_USER_AGENT=READER_UA)
    olga_unsubscribe = f"/t/u/{tokens.unsubscribe_token(sent_email.pk)}/"

    assert on_other.get(f"/t/c/{tokens.click_token(sent_email.pk, link.pk)}/").status_code == 404
    assert on_other.head(f"/t/c/{tokens.click_token(sent_email.pk, link.pk)}/").status_code == 404
    assert on_other.get(olga_unsubscribe).status_code == 404
    assert on_other.post(olga_unsubscribe).status_code == 404
    assert on_other.get(f"/t/o/{tokens.open_token(sent_email.pk)}.gif").status_code == 200  # the GIF, always
    sent_email.refresh_from_db()
    assert (sent_email.open_count, sent_email.click_count, sent_email.unsubscribed_at) == (0, 0, None)
    assert not Event.objects.filter(email=sent_email).exists()
    # Mallory's own email works on Mallory's domain.
    assert on_other.get(f"/t/u/{tokens.unsubscribe_token(mallory_email.pk)}/").status_code == 200


def test_a_domain_whose_name_changes_stops_being_served(account, sent_email):
    token_path = f"/t/u/{tokens.unsubscribe_token(sent_email.pk)}/"
    assert Client(HTTP_HOST=DOMAIN).get(token_path).status_code == 200

    account.tracking_domain = "links2.olga.example"
    account.save(update_fields=["tracking_domain", *tracking_domains.clear_verification(account)])

    assert Client(HTTP_HOST=DOMAIN).get(token_path).status_code == 400
    assert Client(HTTP_HOST="links2.olga.example").get(token_path).status_code == 400


def test_the_tls_proxys_ask_endpoint_answers_200_for_verified_domains_only(account):
    ask = Client()

    assert ask.get("/t/domain-allowed", {"domain": DOMAIN}).status_code == 200
    assert ask.get("/t/domain-allowed", {"domain": DOMAIN.upper() + "."}).status_code == 200
    assert ask.get("/t/domain-allowed", {"domain": "evil.example"}).status_code == 404
    assert ask.get("/t/domain-allowed").status_code == 404


def test_the_ask_endpoint_lets_a_certificate_be_got_while_a_check_runs(db):
    checking = SmtpAccountFactory(tracking_domain="links.checking.example", tracking_domain_checked_at=timezone.now())
    stale = SmtpAccountFactory(
        tracking_domain="links.stale.example", tracking_domain_checked_at=timezone.now() - timezone.timedelta(hours=1)
    )

    assert Client().get("/t/domain-allowed", {"domain": checking.tracking_domain}).status_code == 200
    assert Client().get("/t/domain-allowed", {"domain": stale.tracking_domain}).status_code == 404


def test_the_check_url_answers_only_on_the_name_its_token_was_signed_for(db):
    token = tracking_domains.check_token(account_id=1, domain="links.new.example")
    path = f"/t/domain-check/{token}/"

    answered = Client(HTTP_HOST="links.new.example").get(path)

    assert answered.status_code == 200 and answered.content.decode() == tracking_domains.check_answer(token)
    assert token not in answered.content.decode()
    assert Client().get(path).status_code == 404  # the site's host: not the name signed
    assert Client(HTTP_HOST="other.example").get(path).status_code == 400
    assert Client(HTTP_HOST="links.new.example").get("/admin/login/").status_code == 400
    assert Client(HTTP_HOST="links.new.example").get("/t/domain-check/forged/").status_code == 400
