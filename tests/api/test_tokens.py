"""API tokens: shown once, kept as a digest, revocable, their last use recorded, limited per window."""

import hashlib
import io

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from api import services
from api.models import ApiToken
from tests.api.conftest import ApiClient


def test_a_token_is_kept_only_as_its_digest(alice):
    token, raw = services.create_token(owner=alice, name="Shop")
    stored = ApiToken.objects.get(pk=token.pk)
    assert raw.startswith("ecm_") and len(raw) > 40
    assert stored.digest == hashlib.sha256(raw.encode()).hexdigest()
    assert raw not in {stored.name, stored.prefix, stored.digest}
    assert raw.startswith(stored.prefix)


def test_a_token_needs_a_name(alice):
    with pytest.raises(ValueError, match="needs a name"):
        services.create_token(owner=alice, name="  ")


def test_requests_without_a_live_token_are_401_problems(alice):
    token, raw = services.create_token(owner=alice, name="Shop")
    for client in (ApiClient("ecm_not-a-token"), ApiClient(raw + "x"), ApiClient("")):
        response = client.get("/api/v1/contacts")
        assert response.status_code == 401
        assert response["Content-Type"] == "application/problem+json"
        assert response["WWW-Authenticate"] == 'Bearer realm="api"'
        assert response.json()["status"] == 401
    assert ApiClient(raw).get("/api/v1/contacts").status_code == 200

    assert services.revoke_token(token=token, now=timezone.now()) is True
    assert services.revoke_token(token=token, now=timezone.now()) is False
    assert ApiClient(raw).get("/api/v1/contacts").status_code == 401


def test_a_token_stops_working_when_its_owner_may_no_longer_log_in(alice):
    _, raw = services.create_token(owner=alice, name="Shop")
    alice.access_expires_at = timezone.now()
    alice.save()
    assert ApiClient(raw).get("/api/v1/contacts").status_code == 401


def test_the_last_use_is_recorded(alice):
    token, raw = services.create_token(owner=alice, name="Shop")
    assert token.last_used_at is None
    before = timezone.now()
    ApiClient(raw).get("/api/v1/contacts")
    token.refresh_from_db()
    assert token.last_used_at is not None and token.last_used_at >= before


def test_past_the_limit_a_token_gets_429_with_retry_after(alice, settings):
    settings.API_RATE_LIMIT = 3
    settings.API_RATE_WINDOW_SECONDS = 3600
    _, raw = services.create_token(owner=alice, name="Shop")
    _, other_raw = services.create_token(owner=alice, name="CRM")
    client = ApiClient(raw)
    assert [client.get("/api/v1/contacts").status_code for _ in range(3)] == [200, 200, 200]
    refused = client.get("/api/v1/contacts")
    assert refused.status_code == 429
    assert refused["Content-Type"] == "application/problem+json"
    assert 1 <= int(refused["Retry-After"]) <= 3600
    # Counted per token: another token of the same owner goes on.
    assert ApiClient(other_raw).get("/api/v1/contacts").status_code == 200


def test_the_command_prints_a_working_token_once(alice):
    out, err = io.StringIO(), io.StringIO()
    call_command("create_api_token", "alice", "--name", "Website", stdout=out, stderr=err)
    raw = out.getvalue().strip()
    assert ApiToken.objects.get(owner=alice).name == "Website"
    assert "not shown again" in err.getvalue()
    assert ApiClient(raw).get("/api/v1/contacts").status_code == 200


def test_the_command_refuses_unknown_and_blocked_users(alice):
    with pytest.raises(CommandError, match="No user named"):
        call_command("create_api_token", "nobody")
    alice.is_active = False
    alice.save()
    with pytest.raises(CommandError, match="deactivated"):
        call_command("create_api_token", "alice")


def test_the_admin_shows_a_new_token_once_and_revokes(alice, bob, client):
    client.force_login(alice)
    response = client.post("/admin/api/apitoken/add/", {"name": "Website sign-up"})
    assert response.status_code == 200
    token = ApiToken.objects.get(owner=alice)
    raw = response.context["raw_token"]
    assert raw.startswith(token.prefix) and raw in response.content.decode()
    assert ApiClient(raw).get("/api/v1/contacts").status_code == 200

    listing = client.get("/admin/api/apitoken/").content.decode()
    assert token.prefix in listing and raw not in listing
    assert raw not in client.get(f"/admin/api/apitoken/{token.pk}/change/").content.decode()

    client.post("/admin/api/apitoken/", {"action": "revoke", "_selected_action": [token.pk]}, follow=True)
    token.refresh_from_db()
    assert token.revoked_at is not None
    assert ApiClient(raw).get("/api/v1/contacts").status_code == 401


def test_another_marketers_token_is_a_404_in_the_admin(alice, bob, client):
    token, _ = services.create_token(owner=bob, name="Bob's")
    client.force_login(alice)
    assert client.get(f"/admin/api/apitoken/{token.pk}/change/").status_code == 404
    assert "Bob&#x27;s" not in client.get("/admin/api/apitoken/").content.decode()
