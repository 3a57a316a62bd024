"""A new marketer opens the emailed confirmation link in Chromium: the page asks, and only its button (a POST
with the page's CSRF token, as a real browser sends it) confirms the address; opening the link confirms
nothing, so a mail scanner that follows it changes nothing. Screenshots go to test-artifacts/.
"""

import pytest
from django.db import close_old_connections

from accounts import services
from accounts.models import User
from tests.e2e.test_dashboard_browser import (  # noqa: F401  (pytest fixtures)
    ARTIFACTS,
    chromium,
    end_live_server_connections,
)

pytestmark = [pytest.mark.browser]


@pytest.fixture
def newcomer(chromium):
    close_old_connections()
    return User.objects.create_user(username="neha", email="neha@example.in", password="a long passphrase 42")


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_the_confirmation_link_asks_and_its_button_confirms(live_server, chromium, newcomer):
    path = f"/accounts/confirm/{services.confirmation_token(user=newcomer)}/"
    for width in (1366, 390):
        page = chromium.new_page(viewport={"width": width, "height": 800})
        page.goto(live_server.url + path)
        page.wait_for_selector("#confirm-button")
        page.screenshot(path=str(ARTIFACTS / f"signup-confirm-ask-{width}.png"))
    close_old_connections()
    newcomer.refresh_from_db()
    assert newcomer.email_confirmed_at is None  # two visits, nothing confirmed

    page.click("#confirm-button")
    page.wait_for_selector("text=Address confirmed")
    page.screenshot(path=str(ARTIFACTS / "signup-confirm-done-390.png"))
    close_old_connections()
    newcomer.refresh_from_db()
    assert newcomer.email_confirmed_at is not None
