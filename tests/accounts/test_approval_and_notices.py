"""Nobody is left waiting unseen: a confirmed sign-up with no superuser to tell is logged and told so;
superusers see who waits; a marketer without a postal address is warned on every admin page."""

import html
import logging
import re
from urllib.parse import urlsplit

import pytest
from django.test import override_settings

from accounts import services
from accounts.models import User
from tests.factories import MarketerFactory, SuperuserFactory
from tests.isolation import free_port

NEW_PASSWORD = "plum orchard 47 lanterns"


def text_of(response):
    return re.sub(r"\s+", " ", html.unescape(response.content.decode()))


def confirmed_sign_up(client, mailoutbox, django_capture_on_commit_callbacks, username="neha"):
    with django_capture_on_commit_callbacks(execute=True):
        client.post(
            "/accounts/signup/",
            {
                "username": username,
                "email": f"{username}@example.in",
                "organization": "",
                "timezone": "Asia/Kolkata",
                "password1": NEW_PASSWORD,
                "password2": NEW_PASSWORD,
            },
        )
    [url] = re.findall(r"https?://\S+/accounts/confirm/\S+", mailoutbox[-1].body)
    # The link's page asks; its button's POST confirms.
    assert client.get(urlsplit(url).path).status_code == 200
    return client.post(urlsplit(url).path)


@pytest.fixture(autouse=True)
def empty_cache():
    from django.core.cache import cache

    cache.clear()
    yield
    cache.clear()


@pytest.mark.django_db
def test_a_sign_up_with_no_superuser_to_tell_is_logged_and_its_owner_told_what_to_do(
    client, mailoutbox, django_capture_on_commit_callbacks, caplog
):
    with caplog.at_level(logging.WARNING, logger="accounts.services"):
        response = confirmed_sign_up(client, mailoutbox, django_capture_on_commit_callbacks)
    assert response.status_code == 200
    page = text_of(response)
    assert "Address confirmed" in page
    assert "no administrator it can tell automatically" in page
    assert "neha" in page
    [record] = [r for r in caplog.records if "waits for approval" in r.getMessage()]
    assert record.levelno == logging.WARNING
    assert "neha" in record.getMessage() and "create_admin" in record.getMessage()
    assert [m.subject for m in mailoutbox] == ["Confirm your email address"]


@pytest.mark.django_db
def test_a_superuser_without_an_address_counts_as_nobody_to_tell(
    client, mailoutbox, django_capture_on_commit_callbacks, caplog
):
    SuperuserFactory(username="root", email="")
    with caplog.at_level(logging.WARNING, logger="accounts.services"):
        response = confirmed_sign_up(client, mailoutbox, django_capture_on_commit_callbacks)
    assert "no administrator it can tell automatically" in text_of(response)
    assert any("waits for approval" in r.getMessage() for r in caplog.records)


@pytest.mark.django_db
def test_with_a_superuser_to_tell_the_page_promises_the_approval_mail(
    client, mailoutbox, django_capture_on_commit_callbacks, superuser
):
    response = confirmed_sign_up(client, mailoutbox, django_capture_on_commit_callbacks)
    page = text_of(response)
    assert "An administrator will approve your account" in page
    assert "no administrator it can tell" not in page
    assert any(m.to == [superuser.email] and "neha" in m.subject for m in mailoutbox)


@pytest.mark.django_db
def test_a_failed_approval_request_is_logged_and_the_confirmation_stands(superuser, caplog):
    user = User.objects.create(username="neha", email="neha@example.in", is_staff=True)
    # A real SMTP backend towards a port nothing listens on: the connection is refused.
    smtp = {"EMAIL_BACKEND": "django.core.mail.backends.smtp.EmailBackend", "EMAIL_HOST": "127.0.0.1"}
    with override_settings(**smtp, EMAIL_PORT=free_port()), caplog.at_level(logging.ERROR, logger="accounts.services"):
        services.confirm_email(token=services.confirmation_token(user=user))
    user.refresh_from_db()
    assert user.email_confirmed_at is not None
    assert any("could not mail the superusers" in r.getMessage() for r in caplog.records)


@pytest.mark.django_db
def test_superusers_see_who_waits_for_approval_on_every_admin_page(superuser_client):
    User.objects.create(username="waiting", email="w@example.in", is_staff=True, email_confirmed_at="2026-01-01T00:00Z")
    User.objects.create(username="unconfirmed", email="u@example.in", is_staff=True)
    for path in ("/admin/", "/admin/accounts/user/"):
        page = text_of(superuser_client.get(path))
        assert "A new account (signed up, address confirmed) waits for your approval." in page
        assert 'href="/admin/accounts/user/?approval=waiting"' in page
    User.objects.filter(username="waiting").update(approved_at="2026-01-02T00:00Z")
    assert "waits for your approval" not in text_of(superuser_client.get("/admin/"))


@pytest.mark.django_db
def test_a_superuser_is_told_when_no_superuser_has_an_address(client):
    root = SuperuserFactory(username="root", email="")
    client.force_login(root)
    page = text_of(client.get("/admin/"))
    assert "No superuser has an email address" in page
    assert f'href="/admin/accounts/user/{root.pk}/change/#id_email"' in page
    root.email = "root@example.com"
    root.save()
    assert "No superuser has an email address" not in text_of(client.get("/admin/"))


@pytest.mark.django_db
def test_marketers_see_no_administrator_banners(marketer_client, superuser):
    User.objects.create(username="waiting", email="w@example.in", is_staff=True, email_confirmed_at="2026-01-01T00:00Z")
    page = text_of(marketer_client.get("/admin/"))
    assert "waits for your approval" not in page


POSTAL_WARNING = "Your profile has no postal address"


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/admin/", "/accounts/profile/", "/admin/campaigns/campaign/"])
def test_a_marketer_without_a_postal_address_is_warned_on_admin_pages(client, path):
    marketer = MarketerFactory(username="neha", postal_address="")
    client.force_login(marketer)
    page = text_of(client.get(path))
    assert POSTAL_WARNING in page
    assert 'href="/accounts/profile/#id_postal_address"' in page


@pytest.mark.django_db
def test_setting_the_postal_address_in_the_profile_ends_the_warning(client):
    marketer = MarketerFactory(username="neha", postal_address="")
    client.force_login(marketer)
    form = {
        "first_name": "",
        "last_name": "",
        "email": marketer.email,
        "timezone": "Asia/Kolkata",
        "organization": "Neha Textiles",
        "postal_address": "   ",
    }
    client.post("/accounts/profile/", form)
    marketer.refresh_from_db()
    assert marketer.postal_address == ""  # blanks are no address
    assert POSTAL_WARNING in text_of(client.get("/admin/"))
    response = client.post("/accounts/profile/", {**form, "postal_address": " 12 Park Street, Kolkata 700016 "})
    assert response.status_code == 302
    marketer.refresh_from_db()
    assert marketer.postal_address == "12 Park Street, Kolkata 700016"
    assert POSTAL_WARNING not in text_of(client.get("/admin/"))


@pytest.mark.django_db
def test_the_profile_says_why_the_postal_address_matters(marketer_client):
    page = text_of(marketer_client.get("/accounts/profile/"))
    assert "Printed in the footer of every campaign email" in page
    assert "CAN-SPAM" in page
    assert POSTAL_WARNING not in page  # the fixture's marketer has an address


@pytest.mark.django_db
@override_settings(DEFAULT_POSTAL_ADDRESS="Operator Ltd, 5 Hill Road, Mumbai 400050")
def test_with_the_operators_default_the_marketer_is_told_which_address_goes_out(client):
    marketer = MarketerFactory(username="neha", postal_address="")
    client.force_login(marketer)
    page = text_of(client.get("/admin/"))
    assert POSTAL_WARNING not in page
    assert "this site's default postal address (Operator Ltd, 5 Hill Road, Mumbai 400050)" in page


@pytest.mark.django_db
def test_public_pages_run_no_notice_queries(client, django_assert_num_queries):
    with django_assert_num_queries(0):
        assert client.get("/accounts/signup/").status_code == 200


@pytest.mark.django_db
def test_notices_and_the_pages_own_messages_share_one_list(client):
    marketer = MarketerFactory(username="neha", postal_address="")
    client.force_login(marketer)
    form = {"email": marketer.email, "timezone": "Asia/Kolkata", "organization": "", "postal_address": ""}
    response = client.post("/accounts/profile/", form, follow=True)
    page = response.content.decode()
    assert page.count('class="messagelist"') == 1
    assert "Your profile is saved." in page and POSTAL_WARNING in page
