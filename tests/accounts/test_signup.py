"""Self-service sign-up, email confirmation, approval, access expiry and password reset,
driven through the real pages with Django's test client and Django's mail outbox."""

import html
import re
import time
from datetime import timedelta
from unittest import mock
from urllib.parse import urlsplit

import pytest
from django.conf import settings
from django.contrib.admin import helpers
from django.core import signing
from django.core.cache import cache
from django.test import Client, override_settings
from django.utils import timezone

from accounts import services
from accounts.models import MARKETERS_GROUP, User
from tests.factories import PASSWORD, MarketerFactory

pytestmark = pytest.mark.django_db

SIGNUP_URL = "/accounts/signup/"
LOGIN_URL = "/admin/login/"
NEW_PASSWORD = "plum orchard 47 lanterns"

NOT_CONFIRMED = "Confirm your email address first"
WAITING = "waiting for an administrator's approval"


def text_of(response):
    return html.unescape(response.content.decode())


def signup_data(**overrides):
    data = {
        "username": "neha",
        "email": "neha@example.in",
        "organization": "Neha Textiles",
        "timezone": "Asia/Kolkata",
        "password1": NEW_PASSWORD,
        "password2": NEW_PASSWORD,
    }
    data.update(overrides)
    return data


def log_in(client, username, password):
    return client.post(LOGIN_URL, {"username": username, "password": password, "next": "/admin/"})


def links_in(message):
    return re.findall(r"https?://\S+", message.body)


@pytest.fixture(autouse=True)
def empty_cache():
    # The sign-up and password reset limits live in the cache, shared by every test of a run.
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def sign_up(client, mailoutbox, django_capture_on_commit_callbacks):
    """POST the sign-up form; the confirmation mail goes out on commit, as it would in production."""

    def do(remote_addr="127.0.0.1", **overrides):
        with django_capture_on_commit_callbacks(execute=True):
            return client.post(SIGNUP_URL, signup_data(**overrides), REMOTE_ADDR=remote_addr)

    return do


def confirmation_path(message):
    [url] = [link for link in links_in(message) if "/accounts/confirm/" in link]
    assert url.startswith(settings.SITE_URL + "/accounts/confirm/")
    return urlsplit(url).path


def confirm_on_page(path):
    """Press the Confirm button of the link's page, in a browser session that keeps CSRF checks on."""
    browser = Client(enforce_csrf_checks=True)
    page = browser.get(path).content.decode()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)
    return browser.post(path, {"csrfmiddlewaretoken": token})


def test_the_confirmation_post_needs_the_pages_csrf_token(sign_up, mailoutbox):
    sign_up()
    path = confirmation_path(mailoutbox[0])
    response = Client(enforce_csrf_checks=True).post(path)
    assert response.status_code == 403
    assert User.objects.get(username="neha").email_confirmed_at is None


def test_full_signup_confirm_approve_login(client, sign_up, mailoutbox, superuser):
    response = sign_up()
    assert response.status_code == 200
    assert "Check your inbox" in text_of(response)
    user = User.objects.get(username="neha")
    assert user.email_confirmed_at is None and user.approved_at is None

    # Not confirmed: the right password is told why it cannot enter.
    response = log_in(client, "neha", NEW_PASSWORD)
    assert response.status_code == 200
    assert NOT_CONFIRMED in text_of(response)
    assert "_auth_user_id" not in client.session

    # One confirmation mail, system mail through Django's EMAIL settings.
    [message] = mailoutbox
    assert message.to == ["neha@example.in"]
    assert message.from_email == settings.DEFAULT_FROM_EMAIL
    assert message.subject == "Confirm your email address"
    path = confirmation_path(message)

    # Opening the link (a person, or a mail scanner's GET or HEAD) only asks: nothing is confirmed.
    response = client.get(path)
    assert response.status_code == 200
    assert "Confirm your address" in text_of(response) and "neha@example.in" in text_of(response)
    assert 'id="confirm-button"' in response.content.decode()
    assert client.head(path).status_code == 200
    user.refresh_from_db()
    assert user.email_confirmed_at is None and len(mailoutbox) == 1

    response = confirm_on_page(path)
    assert response.status_code == 200
    assert "Address confirmed" in text_of(response)
    user.refresh_from_db()
    assert user.email_confirmed_at is not None
    # The superuser hears about the account that waits.
    assert any(m.to == [superuser.email] and "neha" in m.subject for m in mailoutbox[1:])

    # Following the link again is harmless.
    confirmed_at = user.email_confirmed_at
    assert "Address confirmed" in text_of(client.get(path))
    assert "Address confirmed" in text_of(client.post(path))
    user.refresh_from_db()
    assert user.email_confirmed_at == confirmed_at

    response = log_in(client, "neha", NEW_PASSWORD)
    assert response.status_code == 200
    assert WAITING in text_of(response)
    assert "_auth_user_id" not in client.session

    # A superuser approves with the User admin's action.
    admin_client = Client()
    assert log_in(admin_client, superuser.username, PASSWORD).status_code == 302
    mailoutbox.clear()
    response = admin_client.post(
        "/admin/accounts/user/",
        {"action": "approve_selected", helpers.ACTION_CHECKBOX_NAME: [str(user.pk)], "index": "0"},
        follow=True,
    )
    assert response.status_code == 200
    assert "1 account(s) approved." in text_of(response)
    user.refresh_from_db()
    assert user.approved_at is not None
    [approved_mail] = mailoutbox
    assert approved_mail.to == ["neha@example.in"]
    assert approved_mail.from_email == settings.DEFAULT_FROM_EMAIL

    response = log_in(client, "neha", NEW_PASSWORD)
    assert response.status_code == 302
    assert response["Location"] == "/admin/"
    assert client.session["_auth_user_id"] == str(user.pk)
    assert client.get("/admin/").status_code == 200
    assert user.is_staff
    assert list(user.groups.values_list("name", flat=True)) == [MARKETERS_GROUP]


def test_approve_action_is_superuser_only(client, sign_up, marketer):
    sign_up()
    user = User.objects.get(username="neha")
    client.force_login(marketer)
    response = client.post(
        "/admin/accounts/user/",
        {"action": "approve_selected", helpers.ACTION_CHECKBOX_NAME: [str(user.pk)], "index": "0"},
    )
    assert response.status_code == 403
    user.refresh_from_db()
    assert user.approved_at is None


def test_altered_token_is_refused(client, sign_up, mailoutbox):
    sign_up()
    path = confirmation_path(mailoutbox[0])
    token = path.rstrip("/").rsplit("/", 1)[1]
    # Change one character of the signature.
    altered = token[:-1] + ("A" if token[-1] != "A" else "B")
    response = client.get(f"/accounts/confirm/{altered}/")
    assert response.status_code == 400
    assert "This confirmation link is not valid." in text_of(response)
    assert User.objects.get(username="neha").email_confirmed_at is None


def test_token_for_another_address_is_refused(client, sign_up, mailoutbox):
    sign_up()
    path = confirmation_path(mailoutbox[0])
    user = User.objects.get(username="neha")
    # The address changed after the mail went out: the old link no longer confirms anything.
    user.email = "other@example.in"
    user.save(update_fields=["email"])
    response = client.get(path)
    assert response.status_code == 400
    assert "not valid" in text_of(response)
    user.refresh_from_db()
    assert user.email_confirmed_at is None


@override_settings(SIGNUP_CONFIRM_MAX_AGE=-1)
def test_link_older_than_the_max_age_is_refused(client, sign_up, mailoutbox):
    sign_up()
    response = client.get(confirmation_path(mailoutbox[0]))
    assert response.status_code == 400
    assert "This confirmation link has expired." in text_of(response)
    assert User.objects.get(username="neha").email_confirmed_at is None


def test_link_signed_four_days_ago_is_refused_under_the_default_max_age(client, sign_up):
    assert settings.SIGNUP_CONFIRM_MAX_AGE == 3 * 24 * 3600
    sign_up()
    user = User.objects.get(username="neha")
    four_days_ago = time.time() - 4 * 24 * 3600
    with mock.patch.object(signing.time, "time", return_value=four_days_ago):
        old_token = services.confirmation_token(user=user)
    response = client.get(f"/accounts/confirm/{old_token}/")
    assert response.status_code == 400
    assert "expired" in text_of(response)
    # A fresh token for the same user still works: only age was the problem.
    assert client.get(f"/accounts/confirm/{services.confirmation_token(user=user)}/").status_code == 200


def test_signup_link_shown_on_login_page_when_enabled(client):
    response = client.get(LOGIN_URL)
    assert f'href="{SIGNUP_URL}"' in response.content.decode()
    assert client.get(SIGNUP_URL).status_code == 200


@override_settings(SIGNUP_ENABLED=False)
def test_signup_disabled(client):
    assert client.get(SIGNUP_URL).status_code == 404
    assert client.post(SIGNUP_URL, signup_data()).status_code == 404
    assert not User.objects.filter(username="neha").exists()
    response = client.get(LOGIN_URL)
    assert response.status_code == 200
    assert SIGNUP_URL not in response.content.decode()


@pytest.mark.parametrize(
    "overrides, field, message",
    [
        ({"password2": "something else entirely"}, "password2", "The two passwords differ."),
        ({"password1": "password", "password2": "password"}, "password1", "too common"),
    ],
)
def test_signup_form_errors(client, sign_up, mailoutbox, marketer, overrides, field, message):
    assert marketer.username == "alice" and marketer.email == "alice@example.com"
    before = User.objects.count()
    response = sign_up(**overrides)
    assert response.status_code == 200
    errors = " ".join(response.context["form"].errors.get(field, []))
    assert message in errors
    assert message in text_of(response)
    assert User.objects.count() == before
    assert mailoutbox == []


def test_expired_account_cannot_log_in(client):
    MarketerFactory(username="olga", access_expires_at=timezone.now() - timedelta(minutes=1))
    response = log_in(client, "olga", PASSWORD)
    assert response.status_code == 200
    assert "access has expired" in text_of(response)
    assert "_auth_user_id" not in client.session


def test_deactivated_account_cannot_log_in(client):
    MarketerFactory(username="olga", is_active=False)
    response = log_in(client, "olga", PASSWORD)
    assert response.status_code == 200
    assert "deactivated" in text_of(response)


def test_wrong_password_tells_nothing_about_the_account(client):
    MarketerFactory(username="olga", access_expires_at=timezone.now() - timedelta(minutes=1))
    response = log_in(client, "olga", "not the password")
    assert "expired" not in text_of(response)
    assert "Please enter the correct username and password" in text_of(response)


def test_account_with_future_expiry_logs_in(client):
    MarketerFactory(username="olga", access_expires_at=timezone.now() + timedelta(days=1))
    assert log_in(client, "olga", PASSWORD).status_code == 302


@pytest.mark.parametrize(
    "change",
    [
        {"access_expires_at": timezone.now() - timedelta(seconds=1)},
        {"is_active": False},
    ],
    ids=["expires", "deactivated"],
)
def test_logged_in_session_ends_at_next_request(client, change):
    user = MarketerFactory(username="olga")
    assert log_in(client, "olga", PASSWORD).status_code == 302
    assert client.get("/admin/").status_code == 200

    User.objects.filter(pk=user.pk).update(**change)

    response = client.get("/admin/")
    assert response.status_code == 302
    assert response["Location"].startswith(LOGIN_URL)
    assert client.get("/accounts/profile/").status_code == 302


def test_password_reset_by_mail(client, mailoutbox):
    user = MarketerFactory(username="olga", email="olga@example.com")
    login_page = client.get(LOGIN_URL).content.decode()
    assert 'href="/admin/password_reset/"' in login_page

    response = client.post("/admin/password_reset/", {"email": "OLGA@example.com"})
    assert response.status_code == 302
    assert response["Location"] == "/admin/password_reset/done/"
    [message] = mailoutbox
    assert message.to == ["olga@example.com"]
    assert message.from_email == settings.DEFAULT_FROM_EMAIL
    [link] = [url for url in links_in(message) if "/reset/" in url]

    response = client.get(urlsplit(link).path)
    assert response.status_code == 302  # to the token-less set-password URL
    set_password_url = response["Location"]
    response = client.post(set_password_url, {"new_password1": NEW_PASSWORD, "new_password2": NEW_PASSWORD})
    assert response.status_code == 302
    assert response["Location"] == "/reset/done/"

    user.refresh_from_db()
    assert user.check_password(NEW_PASSWORD)
    assert log_in(client, "olga", NEW_PASSWORD).status_code == 302

    # The link works once.
    client.logout()
    response = client.get(urlsplit(link).path)
    assert response.status_code == 200
    assert "invalid" in text_of(response).lower()


def test_password_reset_for_unknown_address_sends_nothing(client, mailoutbox):
    response = client.post("/admin/password_reset/", {"email": "nobody@example.com"})
    assert response.status_code == 302
    assert mailoutbox == []


# --- sign-up replies tell nobody which usernames and addresses exist ---------------------------------


def page_without(response, email):
    return response.content.decode().replace(email, "EMAIL")


def test_a_taken_username_gets_the_same_page_and_the_address_hears_why(sign_up, mailoutbox, marketer):
    fresh = sign_up(username="neha", email="neha@example.in")
    mailoutbox.clear()
    before = User.objects.count()

    response = sign_up(username="Alice", email="ravi@example.in")

    assert response.status_code == 200
    assert page_without(response, "ravi@example.in") == page_without(fresh, "neha@example.in")
    assert "taken" not in text_of(response)
    assert User.objects.count() == before
    [message] = mailoutbox
    assert message.to == ["ravi@example.in"]
    assert message.subject == "Choose another username"
    assert '"Alice"' in message.body and "is taken" in message.body
    assert settings.SITE_URL + SIGNUP_URL in message.body
    assert "/accounts/confirm/" not in message.body


def test_a_taken_address_gets_the_same_page_and_its_owner_is_told(sign_up, mailoutbox, marketer):
    fresh = sign_up(username="neha", email="neha@example.in")
    mailoutbox.clear()
    before = User.objects.count()

    response = sign_up(username="newname", email="ALICE@example.com")

    assert response.status_code == 200
    assert page_without(response, "ALICE@example.com") == page_without(fresh, "neha@example.in")
    assert "exists" not in text_of(response)
    assert User.objects.count() == before
    assert not User.objects.filter(username="newname").exists()
    [message] = mailoutbox
    assert message.to == ["alice@example.com"]
    assert message.subject == "You already have an account"
    assert "its username is alice" in message.body
    assert settings.SITE_URL + "/admin/password_reset/" in message.body
    assert "/accounts/confirm/" not in message.body


def test_an_address_whose_account_is_unconfirmed_is_told_until_when_its_link_works(sign_up, mailoutbox):
    sign_up(username="neha", email="neha@example.in")
    mailoutbox.clear()
    response = sign_up(username="neha2", email="neha@example.in", remote_addr="198.51.100.7")
    assert "Check your inbox" in text_of(response)
    [message] = mailoutbox
    assert "not confirmed yet" in message.body and "works until" in message.body
    assert User.objects.filter(email="neha@example.in").count() == 1


@override_settings(PASSWORD_HASHERS=["tests.accounts.test_login.CountingHasher"])
def test_every_sign_up_outcome_hashes_the_password_once(sign_up, marketer):
    from tests.accounts.test_login import hashes_of

    counts = {
        "free": hashes_of(lambda: sign_up(username="neha", email="neha@example.in")),
        "username taken": hashes_of(lambda: sign_up(username="alice", email="ravi@example.in")),
        "address taken": hashes_of(lambda: sign_up(username="ravi", email="alice@example.com")),
    }
    assert counts == {"free": 1, "username taken": 1, "address taken": 1}


# --- sign-up rate limits ----------------------------------------------------------------------------


def test_sign_ups_from_one_client_are_limited(sign_up, mailoutbox):
    assert settings.SIGNUP_LIMIT_PER_IP == 10
    for n in range(settings.SIGNUP_LIMIT_PER_IP):
        assert sign_up(username=f"user{n}", email=f"user{n}@example.in", remote_addr="203.0.113.5").status_code == 200
    mailoutbox.clear()

    response = sign_up(username="one-more", email="one-more@example.in", remote_addr="203.0.113.5")

    assert response.status_code == 429
    assert "Too many sign-ups from your network" in text_of(response)
    assert 'value="one-more"' in response.content.decode()  # what was typed stays
    assert not User.objects.filter(username="one-more").exists()
    assert mailoutbox == []
    # Another client is not concerned.
    assert sign_up(username="one-more", email="one-more@example.in", remote_addr="198.51.100.7").status_code == 200
    assert User.objects.filter(username="one-more").exists()


def test_sign_ups_from_one_ipv6_64_count_together(sign_up):
    for n in range(settings.SIGNUP_LIMIT_PER_IP):
        sign_up(username=f"user{n}", email=f"user{n}@example.in", remote_addr=f"2001:db8:1:2::{n + 1:x}")
    response = sign_up(username="one-more", email="one-more@example.in", remote_addr="2001:db8:1:2:ffff::1")
    assert response.status_code == 429


@pytest.mark.parametrize("existing", [True, False], ids=["address has an account", "address is free"])
def test_mail_to_one_address_is_limited_the_same_whether_it_has_an_account(sign_up, mailoutbox, existing):
    assert settings.SIGNUP_LIMIT_PER_ADDRESS == 3
    if existing:
        MarketerFactory(username="ravi", email="ravi@example.in")
    for n in range(settings.SIGNUP_LIMIT_PER_ADDRESS):
        response = sign_up(username=f"ravi{n}", email="ravi@example.in", remote_addr=f"198.51.100.{n + 1}")
        assert response.status_code == 200
    assert len(mailoutbox) == settings.SIGNUP_LIMIT_PER_ADDRESS
    response = sign_up(username="ravi9", email="RAVI@example.in", remote_addr="192.0.2.1")
    assert response.status_code == 429
    assert "We have sent this address several emails in the last hour" in text_of(response)
    assert len(mailoutbox) == settings.SIGNUP_LIMIT_PER_ADDRESS


# --- an unconfirmed sign-up expires and frees its username and address -------------------------------


def test_a_new_sign_up_after_the_confirmation_expired_takes_the_username_and_address(sign_up, mailoutbox):
    sign_up(username="neha", email="neha@example.in")
    old = User.objects.get(username="neha")
    old_link = confirmation_path(mailoutbox[0])
    expired_at = timezone.now() - timedelta(seconds=settings.SIGNUP_CONFIRM_MAX_AGE + 1)
    User.objects.filter(pk=old.pk).update(date_joined=expired_at)
    mailoutbox.clear()

    response = sign_up(username="neha", email="neha@example.in", organization="Neha Fabrics")

    assert response.status_code == 200
    new = User.objects.get(username="neha")
    assert new.pk != old.pk and new.organization == "Neha Fabrics"
    assert not User.objects.filter(pk=old.pk).exists()
    [message] = mailoutbox
    assert message.subject == "Confirm your email address"
    # The new link confirms the new account; the old one confirms nothing.
    assert confirmation_path(message) != old_link
    assert Client().get(old_link).status_code == 400
    assert Client().get(confirmation_path(message)).status_code == 200


def test_expired_sign_ups_are_removed_and_nothing_else(superuser):
    now = timezone.now()
    long_ago = now - timedelta(seconds=settings.SIGNUP_CONFIRM_MAX_AGE + 1)
    recently = now - timedelta(seconds=settings.SIGNUP_CONFIRM_MAX_AGE - 60)
    unconfirmed = {"email_confirmed_at": None, "approved_at": None}
    expired = MarketerFactory(username="expired", date_joined=long_ago, **unconfirmed)
    kept = [
        MarketerFactory(username="recent", date_joined=recently, **unconfirmed),
        MarketerFactory(username="confirmed", date_joined=long_ago, approved_at=None),
        MarketerFactory(username="approved-by-hand", date_joined=long_ago, email_confirmed_at=None),
        MarketerFactory(username="logged-in", date_joined=long_ago, last_login=long_ago, **unconfirmed),
    ]
    User.objects.filter(pk=superuser.pk).update(date_joined=long_ago)

    assert services.remove_expired_sign_ups(now=now) == 1

    assert not User.objects.filter(pk=expired.pk).exists()
    assert set(User.objects.values_list("username", flat=True)) == {u.username for u in kept} | {"root"}


# --- password reset rate limits ---------------------------------------------------------------------


def reset(client, email, remote_addr="127.0.0.1"):
    return client.post("/admin/password_reset/", {"email": email}, REMOTE_ADDR=remote_addr)


def test_password_resets_from_one_client_are_limited(client, mailoutbox):
    MarketerFactory(username="olga", email="olga@example.com")
    assert settings.PASSWORD_RESET_LIMIT_PER_IP == 10
    for n in range(settings.PASSWORD_RESET_LIMIT_PER_IP):
        assert reset(client, f"someone{n}@example.com", "203.0.113.5").status_code == 302

    response = reset(client, "olga@example.com", "203.0.113.5")

    assert response.status_code == 429
    assert "Too many password reset requests from your network" in text_of(response)
    assert 'value="olga@example.com"' in response.content.decode()
    assert mailoutbox == []
    assert reset(client, "olga@example.com", "198.51.100.7").status_code == 302
    assert len(mailoutbox) == 1


@pytest.mark.parametrize("existing", [True, False], ids=["address has an account", "address is free"])
def test_password_resets_for_one_address_are_limited_whether_it_has_an_account(client, mailoutbox, existing):
    if existing:
        MarketerFactory(username="olga", email="olga@example.com")
    assert settings.PASSWORD_RESET_LIMIT_PER_ADDRESS == 3
    for n in range(settings.PASSWORD_RESET_LIMIT_PER_ADDRESS):
        assert reset(client, "olga@example.com", f"198.51.100.{n + 1}").status_code == 302
    assert len(mailoutbox) == (settings.PASSWORD_RESET_LIMIT_PER_ADDRESS if existing else 0)

    response = reset(client, "OLGA@example.com", "192.0.2.1")

    assert response.status_code == 429
    assert "Too many password reset requests for this address" in text_of(response)
    assert len(mailoutbox) == (settings.PASSWORD_RESET_LIMIT_PER_ADDRESS if existing else 0)
