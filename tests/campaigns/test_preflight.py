"""Pre-flight checks and the rule they answer to: errors block, each warning needs a tick; a postal
address before anything goes out; a schedule in the past refused. Through the services, on PostgreSQL."""

import datetime

import pytest
from django.utils import timezone

from campaigns.models import Campaign
from campaigns.preflight import ERROR, WARNING, Check
from campaigns.selectors import audience
from campaigns.services import lifecycle, review
from contacts.models import Contact
from delivery import message, preflight
from tests.factories import (
    CampaignFactory,
    ContactFactory,
    ContactListFactory,
    SegmentFactory,
    SmtpAccountFactory,
)

pytestmark = pytest.mark.django_db

C = Campaign.Status
UTC = datetime.UTC
IN_A_DAY = datetime.timedelta(days=1)


@pytest.fixture
def draft(marketer):
    readers = ContactListFactory(owner=marketer, name="Readers", contacts=[ContactFactory(owner=marketer)])
    return CampaignFactory(owner=marketer, lists=[readers])


def codes(checks):
    return {check.code: check.level for check in checks}


# --- the rule ------------------------------------------------------------------------------------


def test_a_warning_not_ticked_refuses_and_leaves_the_draft(draft):
    checks = [Check("image-alt", WARNING, "1 image(s) have no alt text.")]

    with pytest.raises(review.NotCleared, match="Cannot schedule. Tick each warning you have read: 1 not ticked."):
        review.schedule_reviewed(
            campaign=draft, at=timezone.now() + IN_A_DAY, checks=checks, acknowledged=set(), acting_user=None
        )

    draft.refresh_from_db()
    assert draft.status == C.DRAFT


def test_every_warning_ticked_schedules(draft):
    at = timezone.now() + IN_A_DAY
    checks = [Check("image-alt", WARNING, "…"), Check("size", WARNING, "…")]

    scheduled = review.schedule_reviewed(
        campaign=draft, at=at, checks=checks, acknowledged={"image-alt", "size"}, acting_user=None
    )

    assert (scheduled.status, scheduled.scheduled_at) == (C.SCHEDULED, at)


def test_an_error_blocks_even_when_ticked(draft):
    checks = [Check("unsubscribe", ERROR, "The HTML part carries no unsubscribe link.")]

    with pytest.raises(review.NotCleared, match="Cannot send. The HTML part carries no unsubscribe link."):
        review.send_reviewed(campaign=draft, checks=checks, acknowledged={"unsubscribe"}, acting_user=None)

    draft.refresh_from_db()
    assert (draft.status, draft.emails.count()) == (C.DRAFT, 0)


def test_a_check_has_one_of_two_levels():
    with pytest.raises(ValueError, match="level"):
        Check("x", "info", "…")


def test_send_reviewed_starts_at_once(draft):
    sent = review.send_reviewed(campaign=draft, checks=[], acknowledged=set(), acting_user=draft.owner)

    assert (sent.status, sent.emails.count()) == (C.SENDING, 1)
    assert sent.status_events.get(to_status=C.SENDING).reason == "Review and send"


def test_a_time_in_the_past_is_refused_in_the_owners_zone(draft):
    draft.owner.timezone = "America/New_York"
    draft.owner.save()
    past = datetime.datetime(2020, 1, 1, 15, 0, tzinfo=UTC)

    with pytest.raises(lifecycle.LifecycleError, match="2020-01-01 10:00 America/New_York is in the past"):
        review.schedule_reviewed(campaign=draft, at=past, checks=[], acknowledged=set(), acting_user=None)

    draft.refresh_from_db()
    assert (draft.status, draft.scheduled_at) == (C.DRAFT, None)


# --- the postal address ----------------------------------------------------------------------------


def test_no_postal_address_refuses_to_schedule_or_send(draft):
    draft.owner.postal_address = "  \n "
    draft.owner.save()

    for attempt in (
        lambda: lifecycle.schedule(campaign=draft, at=timezone.now() + IN_A_DAY),
        lambda: lifecycle.send_now(campaign=draft),
    ):
        with pytest.raises(lifecycle.LifecycleError, match="add your postal address under My profile"):
            attempt()
    draft.refresh_from_db()
    assert draft.status == C.DRAFT
    assert codes(preflight.synchronous_checks(campaign=draft, recipients=1))["postal-address"] == ERROR


def test_the_operators_default_postal_address_lets_them_send_and_goes_in_the_footer(draft, settings):
    settings.DEFAULT_POSTAL_ADDRESS = "Operator House\n1 Main Road, Pune"
    draft.owner.postal_address = ""
    draft.owner.save()

    assert "postal-address" not in codes(preflight.synchronous_checks(campaign=draft, recipients=1))
    rendered = message.preview(campaign=draft, name="Ann", email="ann@example.org", attributes={})
    assert "Operator House<br>1 Main Road, Pune" in rendered.html
    assert "Operator House, 1 Main Road, Pune" in rendered.text
    lifecycle.send_now(campaign=draft)
    draft.refresh_from_db()
    assert draft.status == C.SENDING


def test_a_body_that_places_its_own_unsubscribe_link_must_carry_the_address(draft):
    draft.body_html = '<p>Hello</p><p><a href="{{ unsubscribe_url }}">Leave</a></p>'
    draft.body_text = "Hello. Leave: {{ unsubscribe_url }}"
    draft.save()

    found = codes(preflight.synchronous_checks(campaign=draft, recipients=1))

    assert found["postal-address-footer"] == ERROR
    assert "unsubscribe" not in found
    draft.body_html = '<p>Hello</p><p>1 Test Street, Pune</p><p><a href="{{ unsubscribe_url }}">Leave</a></p>'
    draft.body_text = "Hello. 1 Test Street, Pune. Leave: {{ unsubscribe_url }}"
    draft.save()
    assert "postal-address-footer" not in codes(preflight.synchronous_checks(campaign=draft, recipients=1))


def test_an_unsubscribe_link_only_some_recipients_get_is_an_error(draft):
    # Placed by the body, so no footer is added; but only under a condition the sample recipient fails.
    draft.body_html = '<p>1 Test Street, Pune</p>{% if Plan %}<a href="{{ unsubscribe_url }}">Leave</a>{% endif %}'
    draft.save()

    check = next(c for c in preflight.synchronous_checks(campaign=draft, recipients=1) if c.code == "unsubscribe")

    assert check.is_error and "HTML part" in check.message


# --- the message -----------------------------------------------------------------------------------


def test_images_without_alt_text_are_counted_and_the_pixel_is_not_one(draft):
    draft.body_html = (
        '<p><img src="https://example.com/a.png"><img src="https://example.com/b.png" alt="Our shop"></p>'
        + "<p>Plenty of words about the shop and its offers.</p>" * 80
    )
    draft.save()

    checks = {c.code: c for c in preflight.synchronous_checks(campaign=draft, recipients=1)}

    assert checks["image-alt"].message.startswith("1 image(s) have no alt text")
    assert "short-html" not in checks


def test_a_short_html_body_with_the_pixel_reuses_the_short_html_warning(draft):
    checks = {c.code: c for c in preflight.synchronous_checks(campaign=draft, recipients=1)}

    assert checks["short-html"].level == WARNING
    assert "the open pixel is one" in checks["short-html"].message


def test_html_past_gmails_clipping_is_a_warning(draft):
    draft.body_html = "<p>" + "Long news, told at length. " * 4000 + "</p>"
    draft.save()

    checks = {c.code: c for c in preflight.synchronous_checks(campaign=draft, recipients=1)}

    assert checks["size"].level == WARNING
    assert "Gmail clips" in checks["size"].message
    rendered = message.preview(campaign=draft, name="A", email="a@example.org", attributes={})
    assert preflight.html_bytes_as_sent(campaign=draft, rendered=rendered) > preflight.GMAIL_CLIP_BYTES


def test_a_text_only_campaign_with_tracking_on_is_told_nothing_is_counted(draft):
    draft.text_only, draft.body_text = True, "Plain news."
    draft.save()

    assert codes(preflight.synchronous_checks(campaign=draft, recipients=1))["text-only-tracking"] == WARNING


def test_a_variable_no_recipient_has_is_a_warning(draft):
    draft.body_html = "<p>Hello {{ Plan }}</p>" + "<p>Words enough to be a real newsletter.</p>" * 100
    draft.save()

    assert codes(preflight.synchronous_checks(campaign=draft, recipients=1))["unknown-variables"] == WARNING


# --- the account and the ETA ----------------------------------------------------------------------


def test_an_account_never_tested_paused_or_unreachable_is_a_warning_and_has_no_eta(marketer):
    now = timezone.now()
    account = SmtpAccountFactory(
        owner=marketer,
        paused_until=now + datetime.timedelta(minutes=20),
        pause_reason="535 authentication failed",
        unreachable_since=now - datetime.timedelta(minutes=5),
        backoff_until=now + datetime.timedelta(minutes=1),
        last_connection_error="Connection refused",
    )
    campaign = CampaignFactory(owner=marketer, smtp_account=account)

    found = {c.code: c for c in preflight.synchronous_checks(campaign=campaign, recipients=10)}

    assert {"account-untested", "account-paused", "account-unreachable"} <= set(found)
    assert "535 authentication failed" in found["account-paused"].message
    assert "Connection refused" in found["account-unreachable"].message
    eta = preflight.eta(campaign=campaign, recipients=10, now=now)
    assert eta.seconds is None and eta.explanation.startswith("No estimate: the account is paused")


def test_the_eta_uses_the_learned_rate_and_the_hourly_limit(marketer):
    account = SmtpAccountFactory(owner=marketer, max_per_minute=60, max_per_hour=600, learned_per_minute=30.0)
    campaign = CampaignFactory(owner=marketer, smtp_account=account)

    eta = preflight.eta(campaign=campaign, recipients=1200, now=timezone.now())

    # 600 in the first hour, 600 more from the second at 30/min: 1 h and 20 min.
    assert eta.seconds == 3600 + 600 / 30 * 60
    assert eta.explanation.startswith("About 1 h 20 min for 1,200 recipient(s), at 30/min (learned")


def test_sending_seconds_within_the_daily_limit():
    assert preflight.sending_seconds(count=60, per_minute=60, per_hour=1000, per_day=2000) == 60
    assert preflight.sending_seconds(count=2001, per_minute=600, per_hour=100000, per_day=2000) == 86400 + 0.1
    assert preflight.describe_duration(90061) == "1 day(s) 1 h"


# --- the audience ---------------------------------------------------------------------------------


def test_the_audience_per_source_says_who_is_left_out_and_why(marketer):
    ann = ContactFactory(owner=marketer, email="ann@example.org", attributes={"City": "Pune"})
    bob = ContactFactory(owner=marketer, email="bob@example.org", attributes={"City": "Goa"})
    gone = ContactFactory(owner=marketer, email="gone@example.org", status=Contact.Status.BOUNCED, attributes={})
    left = ContactFactory(owner=marketer, email="left@example.org", status=Contact.Status.UNSUBSCRIBED, attributes={})
    news = ContactListFactory(owner=marketer, name="News", contacts=[ann, bob, gone, left])
    vip = ContactListFactory(owner=marketer, name="VIP", contacts=[ann])
    pune = SegmentFactory(
        owner=marketer,
        name="Pune",
        conditions=[dict(field="attribute", attribute="City", operator="equals", value="Pune")],
    )
    campaign = CampaignFactory(owner=marketer, lists=[news, vip], segments=[pune])

    found = audience.breakdown(campaign=campaign)

    assert [(s.kind, s.name, s.contacts, s.subscribed, s.left_out) for s in found.sources] == [
        ("list", "News", 4, 2, {"Unsubscribed": 1, "Bounced": 1}),
        ("list", "VIP", 1, 1, {}),
        ("segment", "Pune", 1, 1, {}),
    ]
    assert (found.recipients, found.duplicates) == (2, 2)
    assert audience.unsent_count(campaign=campaign) == 2


def test_the_audience_never_counts_another_owners_contacts(marketer, other_marketer):
    theirs = ContactFactory(owner=other_marketer)
    mine = ContactListFactory(owner=marketer, name="Mine", contacts=[ContactFactory(owner=marketer)])
    mine.contacts.add(theirs)  # a row no form allows, written by hand
    campaign = CampaignFactory(owner=marketer, lists=[mine])

    assert [s.contacts for s in audience.breakdown(campaign=campaign).sources] == [1]


def test_unsent_count_of_a_started_campaign_reads_its_open_rows(draft):
    lifecycle.send_now(campaign=draft)
    draft.refresh_from_db()

    assert audience.unsent_count(campaign=draft) == 1
    lifecycle.cancel(campaign=draft)
    draft.refresh_from_db()
    assert audience.unsent_count(campaign=draft) == 0
