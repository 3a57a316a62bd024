"""The admin login page: a failure costs the same whatever the username, and repeated failures
lock the username and the client out for a while (django-axes)."""

import html
from datetime import timedelta

import pytest
from django.contrib.auth.hashers import MD5PasswordHasher
from django.test import override_settings
from django.utils import timezone

from tests.factories import PASSWORD, MarketerFactory

pytestmark = pytest.mark.django_db

LOGIN_URL = "/admin/login/"
WRONG = "not the password"


def log_in(client, username, password, **extra):
    return client.post(LOGIN_URL, {"username": username, "password": password, "next": "/admin/"}, **extra)


def text_of(response):
    return html.unescape(response.content.decode())


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
