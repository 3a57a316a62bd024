"""CampaignEvent: one row per campaign status change, written by lifecycle with the change,
and the dashboard's activity feed that reads them."""

import importlib
import io
from datetime import timedelta

import pytest
from django.apps import apps
from django.core.management import call_command
from django.urls import reverse
from django.utils import timezone

from campaigns.models import Campaign, CampaignEvent, Email
from campaigns.services import lifecycle
from reporting.selectors.dashboard import dashboard
from tests.factories import CampaignFactory, ContactFactory, ContactListFactory, EmailFactory

pytestmark = pytest.mark.django_db

C = Campaign.Status


def history(campaign):
    return list(
        CampaignEvent.objects.filter(campaign=campaign)
        .order_by("id")
        .values_list("from_status", "to_status", "acting_user__username", "reason")
    )


@pytest.fixture
def draft(marketer):
    audience = ContactListFactory(owner=marketer, contacts=[ContactFactory(owner=marketer, email="a@example.org")])
    return CampaignFactory(owner=marketer, name="Spring", lists=[audience])


def test_every_lifecycle_transition_writes_one_event_with_who_and_why(draft, marketer):
    lifecycle.schedule(campaign=draft, at=timezone.now() + timedelta(days=1), acting_user=marketer)
    lifecycle.unschedule(campaign=draft, acting_user=marketer)
    lifecycle.send_now(campaign=draft, acting_user=marketer)
    lifecycle.pause(campaign=draft, acting_user=marketer, reason="holiday")
    lifecycle.resume(campaign=draft, acting_user=marketer)
    lifecycle.cancel(campaign=draft, acting_user=None, reason="manage.py cancel_campaign")
    who = marketer.username
    assert history(draft) == [
        (C.DRAFT, C.SCHEDULED, who, ""),
        (C.SCHEDULED, C.DRAFT, who, ""),
        (C.DRAFT, C.SCHEDULED, who, ""),
        (C.SCHEDULED, C.SENDING, who, ""),
        (C.SENDING, C.PAUSED, who, "holiday"),
        (C.PAUSED, C.SENDING, who, ""),
        (C.SENDING, C.CANCELLED, None, "manage.py cancel_campaign"),
    ]
    draft.refresh_from_db()
    assert draft.status == C.CANCELLED


def test_a_campaign_paused_before_it_started_resumes_to_scheduled(draft, marketer):
    lifecycle.schedule(campaign=draft, at=timezone.now() + timedelta(days=1), acting_user=marketer)
    lifecycle.pause(campaign=draft, acting_user=marketer, reason="wait")
    lifecycle.resume(campaign=draft, acting_user=marketer)
    assert [(f, t) for f, t, _, _ in history(draft)][1:] == [(C.SCHEDULED, C.PAUSED), (C.PAUSED, C.SCHEDULED)]


def test_a_refused_transition_writes_no_event(draft, marketer):
    with pytest.raises(lifecycle.LifecycleError):
        lifecycle.pause(campaign=draft, acting_user=marketer)
    with pytest.raises(lifecycle.LifecycleError):
        lifecycle.resume(campaign=draft, acting_user=marketer)
    assert history(draft) == []
    draft.refresh_from_db()
    assert draft.status == C.DRAFT


def test_dispatcher_start_and_the_last_batch_completion_are_the_systems_events(engine):
    campaign = engine.campaign(engine.contact_list("a@example.org", "b@example.org"))
    lifecycle.schedule(campaign=campaign, at=engine.clock(), acting_user=engine.owner)
    engine.tick()  # starts it, claims both rows and sends them in this process
    campaign.refresh_from_db()
    assert campaign.status == C.COMPLETED
    assert history(campaign) == [
        (C.DRAFT, C.SCHEDULED, engine.owner.username, ""),
        (C.SCHEDULED, C.SENDING, None, ""),
        (C.SENDING, C.COMPLETED, None, lifecycle.COMPLETED_REASON),
    ]
    completed = CampaignEvent.objects.get(campaign=campaign, to_status=C.COMPLETED)
    assert completed.at == campaign.completed_at
    assert len(engine.handler.messages) == 2


def test_completion_writes_events_only_for_the_campaigns_it_completes(marketer):
    now = timezone.now()
    done = CampaignFactory(owner=marketer, status=C.SENDING, started_at=now)
    EmailFactory(campaign=done, status=Email.Status.SENT)
    busy = CampaignFactory(owner=marketer, status=C.SENDING, started_at=now)
    EmailFactory(campaign=busy, status=Email.Status.PENDING)
    draft = CampaignFactory(owner=marketer)
    assert lifecycle.complete_finished(now=now) == 1
    assert lifecycle.complete_finished(now=now) == 0  # nothing more to complete: no second event
    assert lifecycle.complete_finished(now=now, campaign_ids={busy.pk}) == 0
    assert history(done) == [(C.SENDING, C.COMPLETED, None, lifecycle.COMPLETED_REASON)]
    assert history(busy) == history(draft) == []
    assert Campaign.objects.get(pk=busy.pk).status == C.SENDING


def test_retrying_a_completed_campaign_records_it_sending_again(marketer):
    campaign = CampaignFactory(owner=marketer, status=C.COMPLETED, started_at=timezone.now())
    EmailFactory(campaign=campaign, status=Email.Status.FAILED)
    assert lifecycle.retry_failed(campaign=campaign, acting_user=marketer) == 1
    assert history(campaign) == [(C.COMPLETED, C.SENDING, marketer.username, "1 failed email(s) retried")]


def test_admin_actions_record_the_user_who_acted(marketer_client, marketer, draft):
    lifecycle.send_now(campaign=draft, acting_user=marketer)
    url = reverse("admin:campaigns_campaign_changelist")
    for action in ("pause", "resume"):
        response = marketer_client.post(url, {"action": action, "_selected_action": [draft.pk]})
        assert response.status_code == 302
    assert history(draft)[-2:] == [
        (C.SENDING, C.PAUSED, marketer.username, "Paused by the owner"),
        (C.PAUSED, C.SENDING, marketer.username, ""),
    ]


def test_commands_record_the_system_and_the_command(draft):
    lifecycle.send_now(campaign=draft)
    call_command("pause_campaign", str(draft.pk), stdout=io.StringIO())
    assert history(draft)[-1] == (C.SENDING, C.PAUSED, None, "manage.py pause_campaign")
    draft.refresh_from_db()
    assert draft.status_reason == "manage.py pause_campaign"


def test_a_pause_then_a_resume_both_show_in_the_activity_feed(draft, marketer):
    now = timezone.now()
    lifecycle.send_now(campaign=draft, acting_user=marketer, now=now - timedelta(minutes=3))
    lifecycle.pause(campaign=draft, acting_user=marketer, reason="Paused by the owner", now=now - timedelta(minutes=2))
    lifecycle.resume(campaign=draft, acting_user=marketer, now=now - timedelta(minutes=1))
    feed = [(item["kind"], item["text"]) for item in dashboard(user=marketer, now=now)["activity"]]
    who = marketer.username
    assert feed == [
        ("resumed", f"Campaign “Spring” resumed by {who}"),
        ("paused", f"Campaign “Spring” paused by {who}: Paused by the owner"),
        ("started", f"Campaign “Spring” started sending by {who}"),
    ]


def test_the_feed_shows_completion_and_cancellation_and_leaves_scheduling_out(marketer, other_marketer):
    now = timezone.now()
    finished = CampaignFactory(owner=marketer, name="Done", status=C.SENDING, started_at=now)
    lifecycle.complete_finished(now=now - timedelta(minutes=1))
    stopped = CampaignFactory(owner=marketer, name="Stopped", lists=[ContactListFactory(owner=marketer)])
    lifecycle.schedule(campaign=stopped, at=now + timedelta(days=1), now=now - timedelta(seconds=30))
    lifecycle.cancel(campaign=stopped, acting_user=marketer, reason="wrong list", now=now)
    CampaignFactory(owner=other_marketer, name="Theirs", status=C.SENDING, started_at=now)
    lifecycle.complete_finished(now=now)
    feed = [(item["kind"], item["text"], item["campaign_id"]) for item in dashboard(user=marketer, now=now)["activity"]]
    assert feed == [
        ("cancelled", f"Campaign “Stopped” cancelled by {marketer.username}: wrong list", stopped.pk),
        ("completed", "Campaign “Done” completed", finished.pk),
    ]


def test_the_campaign_page_shows_its_history_and_the_owner_can_still_delete_it(marketer_client, marketer, draft):
    lifecycle.send_now(campaign=draft, acting_user=marketer)
    lifecycle.cancel(campaign=draft, acting_user=marketer, reason="wrong list")
    page = marketer_client.get(reverse("admin:campaigns_campaign_change", args=[draft.pk]))
    assert page.status_code == 200
    html = page.content.decode()
    assert "Sending → Cancelled" in html and "wrong list" in html and marketer.username in html
    response = marketer_client.post(reverse("admin:campaigns_campaign_delete", args=[draft.pk]), {"post": "yes"})
    assert response.status_code == 302
    assert not Campaign.objects.filter(pk=draft.pk).exists() and not CampaignEvent.objects.exists()


def test_the_upgrade_backfills_history_from_the_timestamps(marketer):
    now = timezone.now()
    started, ended = now - timedelta(hours=2), now - timedelta(hours=1)
    completed = CampaignFactory(owner=marketer, status=C.COMPLETED, started_at=started, completed_at=ended)
    paused = CampaignFactory(owner=marketer, status=C.PAUSED, started_at=started, status_reason="holiday")
    cancelled = CampaignFactory(owner=marketer, status=C.CANCELLED, completed_at=ended)
    scheduled = CampaignFactory(owner=marketer, status=C.SCHEDULED, scheduled_at=now)
    migration = importlib.import_module("campaigns.migrations.0011_backfill_campaign_events")
    migration.backfill(apps, None)
    assert [(f, t) for f, t, _, _ in history(completed)] == [(C.SCHEDULED, C.SENDING), (C.SENDING, C.COMPLETED)]
    assert CampaignEvent.objects.get(campaign=completed, to_status=C.COMPLETED).at == ended
    assert history(paused)[-1] == (C.SENDING, C.PAUSED, None, "holiday")
    assert [(f, t) for f, t, _, _ in history(cancelled)] == [(C.SCHEDULED, C.CANCELLED)]
    assert history(scheduled) == []
    kinds = [item["kind"] for item in dashboard(user=marketer, now=now)["activity"]]
    assert sorted(kinds) == ["cancelled", "completed", "paused", "started", "started"]
