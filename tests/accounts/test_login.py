"""The admin login page: a failure costs the same whatever the username, and repeated failures
lock the username and the client out for a while (django-axes)."""

import html
from datetime import timedelta
from io import StringIO

import pytest
from axes.models import AccessAttempt, AccessLog
from django.conf import settings
from django.contrib.auth.hashers import MD5PasswordHasher
from django.core.management import call_command
from django.test import Client, override_settings
from django.utils import timezone

from tests.factories import PASSWORD, MarketerFactory

pytestmark = pytest.mark.django_db

LOGIN_URL = "/admin/login/"
WRONG = "not the password"


@pytest.fixture(autouse=True)
def fast_hasher(settings):
    # Dozens of failed logins a test: the real hasher's cost would only slow the run down.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def log_in(client, username, password, **extra):
    return client.post(LOGIN_URL, {"username": username, "password": password, "next": "/admin/"}, **extra)


def text_of(response):
    # Django writes "15 minutes" with a no-break space.
    return " ".join(html.unescape(response.content.decode()).split())


# --- one password hash per attempt, whatever the username ------------------------------------------


class CountingHasher(MD5PasswordHasher):
    """Counts every hash it computes (checking a password encodes it too), to compare attempts
    without measuring time."""

    algorithm = "counting"
    calls = 0

    def encode(self, password, salt):
        type(self).calls += 1
        return super().encode(password, salt)


def hashes_of(attempt):
    CountingHasher.calls = 0
    attempt()
    return CountingHasher.calls


@override_settings(PASSWORD_HASHERS=["tests.accounts.test_login.CountingHasher"])
def test_a_failed_login_hashes_once_whatever_the_username(client):
    MarketerFactory(username="olga")
    MarketerFactory(username="ivan", is_active=False)
    MarketerFactory(username="neha", email_confirmed_at=None, approved_at=None)
    MarketerFactory(username="omar", access_expires_at=timezone.now() - timedelta(minutes=1))

    attempts = {
        "unknown name": lambda: log_in(client, "nobody", WRONG),
        "real name, wrong password": lambda: log_in(client, "olga", WRONG),
        "inactive, wrong password": lambda: log_in(client, "ivan", WRONG),
        "inactive, right password": lambda: log_in(client, "ivan", PASSWORD),
        "unconfirmed, right password": lambda: log_in(client, "neha", PASSWORD),
        "expired, right password": lambda: log_in(client, "omar", PASSWORD),
    }
    counts = {name: hashes_of(attempt) for name, attempt in attempts.items()}
    assert counts == dict.fromkeys(attempts, 1)
    assert "_auth_user_id" not in client.session


@override_settings(PASSWORD_HASHERS=["tests.accounts.test_login.CountingHasher"])
def test_the_reason_still_shows_for_the_right_password_only(client):
    MarketerFactory(username="neha", email_confirmed_at=None, approved_at=None)
    assert "Confirm your email address first" in text_of(log_in(client, "neha", PASSWORD))
    response = log_in(client, "neha", WRONG)
    assert "Confirm your email address first" not in text_of(response)
    assert "Please enter the correct username and password" in text_of(response)


# --- lockouts: per username and per client ---------------------------------------------------------


def fail_until_locked(client, username, **extra):
    for _ in range(settings.AXES_FAILURE_LIMIT):
        response = log_in(client, username, WRONG, **extra)
    return response


def assert_locked_page(response):
    assert response.status_code == 429
    text = text_of(response)
    assert "Too many failed logins" in text
    assert "Try again in 15 minutes" in text
    assert response["Retry-After"] == "900"


def test_the_right_password_after_the_failure_limit_does_not_log_in(client, marketer):
    assert settings.AXES_FAILURE_LIMIT == 10
    assert_locked_page(fail_until_locked(client, "alice"))
    response = log_in(client, "alice", PASSWORD)
    assert_locked_page(response)
    assert "_auth_user_id" not in client.session


def test_failures_below_the_limit_do_not_lock(client, marketer):
    for _ in range(settings.AXES_FAILURE_LIMIT - 1):
        assert log_in(client, "alice", WRONG).status_code == 200
    assert log_in(client, "alice", PASSWORD).status_code == 302


def test_a_locked_username_is_locked_from_every_address(client, marketer):
    fail_until_locked(client, "alice", REMOTE_ADDR="203.0.113.5")
    other = Client(REMOTE_ADDR="198.51.100.7")
    assert_locked_page(log_in(other, "alice", PASSWORD))
    # Another username from that other address is not concerned.
    MarketerFactory(username="olga")
    assert log_in(other, "olga", PASSWORD).status_code == 302


def test_a_client_failing_on_many_usernames_is_locked_for_every_username(client, marketer):
    for n in range(settings.AXES_FAILURE_LIMIT):
        log_in(client, f"guess{n}", WRONG, REMOTE_ADDR="203.0.113.5")
    assert_locked_page(log_in(client, "alice", PASSWORD, REMOTE_ADDR="203.0.113.5"))
    assert log_in(Client(), "alice", PASSWORD, REMOTE_ADDR="198.51.100.7").status_code == 302


def test_one_ipv6_64_is_one_client(client, marketer):
    for n in range(settings.AXES_FAILURE_LIMIT):
        log_in(client, f"guess{n}", WRONG, REMOTE_ADDR=f"2001:db8:1:2::{n + 1:x}")
    assert_locked_page(log_in(client, "alice", PASSWORD, REMOTE_ADDR="2001:db8:1:2:abcd::1"))
    assert log_in(client, "alice", PASSWORD, REMOTE_ADDR="2001:db8:1:3::1").status_code == 302


@override_settings(TRUSTED_PROXIES=["10.0.0.0/8"])
def test_behind_a_trusted_proxy_each_client_has_its_own_count(client, marketer):
    for n in range(settings.AXES_FAILURE_LIMIT):
        log_in(client, f"guess{n}", WRONG, REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR="203.0.113.5")
    # The guesser is locked; another visitor through the same proxy is not.
    assert_locked_page(log_in(client, "alice", PASSWORD, REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR="203.0.113.5"))
    response = log_in(Client(), "alice", PASSWORD, REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR="198.51.100.7")
    assert response.status_code == 302


@override_settings(TRUSTED_PROXIES=["10.0.0.0/8"])
def test_a_forged_header_does_not_move_an_untrusted_client_out_of_its_count(client, marketer):
    for n in range(settings.AXES_FAILURE_LIMIT):
        log_in(client, f"guess{n}", WRONG, REMOTE_ADDR="203.0.113.5", HTTP_X_FORWARDED_FOR=f"198.51.100.{n}")
    response = log_in(client, "alice", PASSWORD, REMOTE_ADDR="203.0.113.5", HTTP_X_FORWARDED_FOR="192.0.2.99")
    assert_locked_page(response)


def test_the_lock_ends_when_the_cool_off_has_passed_without_failures(client, marketer):
    fail_until_locked(client, "alice")
    AccessAttempt.objects.update(attempt_time=timezone.now() - settings.AXES_COOLOFF_TIME - timedelta(seconds=1))
    assert log_in(client, "alice", PASSWORD).status_code == 302


def test_axes_reset_username_unlocks(client, marketer):
    fail_until_locked(client, "alice", REMOTE_ADDR="203.0.113.5")
    out = StringIO()
    call_command("axes_reset_username", "alice", stdout=out)
    assert "attempts removed" in out.getvalue()
    assert log_in(client, "alice", PASSWORD, REMOTE_ADDR="198.51.100.7").status_code == 302


def test_a_superuser_unlocks_in_the_admin_and_a_marketer_cannot_see_attempts(client, marketer, superuser):
    fail_until_locked(Client(), "alice")
    [attempt] = AccessAttempt.objects.all()
    admin_client = Client(REMOTE_ADDR="198.51.100.7")
    admin_client.force_login(superuser)
    url = f"/admin/axes/accessattempt/{attempt.pk}/delete/"
    assert admin_client.get("/admin/axes/accessattempt/").status_code == 200
    assert admin_client.post(url, {"post": "yes"}).status_code == 302
    assert not AccessAttempt.objects.exists()

    client.force_login(marketer)
    assert client.get("/admin/axes/accessattempt/").status_code == 403


def test_the_locked_out_message_is_said_on_the_page_not_a_bare_403(client, marketer):
    response = fail_until_locked(client, "alice")
    assert response["Content-Type"].startswith("text/html")
    assert 'href="/admin/password_reset/"' in response.content.decode()


def test_successful_logins_leave_no_address_log(client, marketer):
    assert log_in(client, "alice", PASSWORD).status_code == 302
    assert not AccessLog.objects.exists()
