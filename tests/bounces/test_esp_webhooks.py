"""The ESP webhook end to end: each ESP's signed post to the account's URL suppresses the right
contact and records it on the Email; forged, foreign and unknown posts change nothing."""

import email
import email.policy
import json

import pytest
from django.utils import timezone

from bounces import sns
from campaigns.models import Email
from contacts.models import Contact
from sending import esp_webhooks
from sending.esp import Esp
from tests.bounces.esp_samples import COMPLAINING_ESPS, SIGNING_ESPS, Sample, post_for
from tests.bounces.sns_server import SnsServer, ses_bounce
from tests.bounces.test_esp_reading import ANYMAIL_ESPS, basic_auth, webhook_of
from tests.factories import CampaignFactory, ContactFactory, EmailFactory, SmtpAccountFactory


@pytest.fixture(autouse=True)
def own_cache(settings, redis_url):
    # The failure counts live in the cache: the run's own redis, emptied for each test.
    from django.core.cache import cache

    cache.clear()


def sent_email(account, address):
    campaign = CampaignFactory(owner=account.owner, smtp_account=account)
    contact = Contact.objects.filter(owner=account.owner, email=address).first()
    contact = contact or ContactFactory(owner=account.owner, email=address)
    return EmailFactory(campaign=campaign, contact=contact, status=Email.Status.SENT, sent_at=timezone.now())


def post(client, webhook, kind, sample, *, forged=False, auth=None, token=None):
    kwargs = post_for(webhook.account.esp, kind, sample, url=esp_webhooks.webhook_url(webhook), forged=forged)
    headers = {**kwargs.pop("headers"), **(auth if auth is not None else basic_auth(webhook))}
    return client.post(f"/esp/{token or webhook.token}/", headers=headers, **kwargs)


def contact_status(row):
    return Contact.objects.get(pk=row.contact_id).status


@pytest.mark.parametrize("esp_name", ANYMAIL_ESPS)
def test_a_hard_bounce_suppresses_the_contact_and_is_recorded_once(client, marketer, esp_name):
    webhook = webhook_of(marketer, esp_name)
    row = sent_email(webhook.account, "gone@example.org")
    sample = Sample(recipient="gone@example.org", email_id=row.pk)

    first = post(client, webhook, "bounce", sample)
    row.refresh_from_db()
    bounced_at = row.bounced_at
    again = post(client, webhook, "bounce", sample)

    assert (first.status_code, again.status_code) == (200, 200)
    assert contact_status(row) == Contact.Status.BOUNCED
    row.refresh_from_db()
    assert (row.status, row.bounce_kind, row.bounced_at) == (Email.Status.SENT, Email.BounceKind.HARD, bounced_at)
    webhook.refresh_from_db()
    assert webhook.events_received == 2 and webhook.last_event_at is not None


@pytest.mark.parametrize("esp_name", COMPLAINING_ESPS)
def test_a_complaint_suppresses_the_contact_as_complained(client, marketer, esp_name):
    webhook = webhook_of(marketer, esp_name)
    row = sent_email(webhook.account, "angry@example.org")

    response = post(client, webhook, "complaint", Sample(recipient="angry@example.org", email_id=row.pk))

    assert response.status_code == 200
    assert contact_status(row) == Contact.Status.COMPLAINED
    row.refresh_from_db()
    assert row.complained_at is not None


@pytest.mark.parametrize("esp_name", SIGNING_ESPS)
def test_a_forged_signature_is_refused_and_changes_nothing(client, marketer, esp_name):
    webhook = webhook_of(marketer, esp_name)
    row = sent_email(webhook.account, "gone@example.org")

    response = post(client, webhook, "bounce", Sample(recipient="gone@example.org", email_id=row.pk), forged=True)

    assert response.status_code == 400
    assert contact_status(row) == Contact.Status.SUBSCRIBED
    webhook.refresh_from_db()
    assert webhook.events_received == 0


def test_wrong_basic_auth_is_refused_and_an_unknown_url_is_404(client, marketer):
    webhook = webhook_of(marketer, Esp.POSTMARK)
    row = sent_email(webhook.account, "gone@example.org")
    sample = Sample(recipient="gone@example.org", email_id=row.pk)

    assert post(client, webhook, "bounce", sample, auth=basic_auth(webhook, secret="guessed")).status_code == 400
    assert post(client, webhook, "bounce", sample, auth={}).status_code == 400
    assert post(client, webhook, "bounce", sample, token="x" * 32).status_code == 404
    assert client.get(f"/esp/{webhook.token}/").status_code == 405
    assert contact_status(row) == Contact.Status.SUBSCRIBED


def test_an_account_without_an_esp_has_no_webhook(client, marketer):
    webhook = webhook_of(marketer, Esp.POSTMARK)
    row = sent_email(webhook.account, "gone@example.org")
    sample = post_for(Esp.POSTMARK, "bounce", Sample(recipient="gone@example.org", email_id=row.pk))
    webhook.account.esp = ""
    webhook.account.save(update_fields=["esp"])

    response = client.post(f"/esp/{webhook.token}/", headers={**sample.pop("headers"), **basic_auth(webhook)}, **sample)

    assert response.status_code == 404


def test_an_email_of_another_account_or_owner_changes_nothing(client, marketer, other_marketer):
    webhook = webhook_of(marketer, Esp.POSTMARK)
    same_owner_other_account = sent_email(SmtpAccountFactory(owner=marketer, name="other"), "a@example.org")
    other_owner = sent_email(SmtpAccountFactory(owner=other_marketer), "b@example.org")

    for row in (same_owner_other_account, other_owner):
        response = post(client, webhook, "bounce", Sample(recipient=row.to_email, email_id=row.pk))
        assert response.status_code == 200
        assert contact_status(row) == Contact.Status.SUBSCRIBED
        row.refresh_from_db()
        assert row.bounced_at is None


def test_without_an_email_id_the_latest_email_to_the_recipient_is_meant(client, marketer):
    webhook = webhook_of(marketer, Esp.POSTAL)  # Postal echoes no metadata
    row = sent_email(webhook.account, "gone@example.org")
    foreign = sent_email(SmtpAccountFactory(owner=marketer, name="other"), "gone@example.org")

    assert post(client, webhook, "bounce", Sample(recipient="gone@example.org", email_id=None)).status_code == 200

    row.refresh_from_db()
    foreign.refresh_from_db()
    assert row.bounce_kind == Email.BounceKind.HARD and foreign.bounced_at is None
    assert contact_status(row) == Contact.Status.BOUNCED


def test_deliveries_and_delays_are_counted_and_change_nothing(client, marketer):
    webhook = webhook_of(marketer, Esp.MAILGUN)
    row = sent_email(webhook.account, "fine@example.org")

    for kind in ("delivery", "deferred"):
        assert post(client, webhook, kind, Sample(recipient="fine@example.org", email_id=row.pk)).status_code == 200

    row.refresh_from_db()
    assert row.bounced_at is None and contact_status(row) == Contact.Status.SUBSCRIBED
    webhook.refresh_from_db()
    assert webhook.events_received == 2


def test_a_client_that_keeps_failing_is_refused_for_a_while(client, marketer, settings):
    settings.ESP_WEBHOOK_FAILURES_PER_IP = 3
    webhook = webhook_of(marketer, Esp.POSTMARK)
    row = sent_email(webhook.account, "gone@example.org")
    sample = Sample(recipient="gone@example.org", email_id=row.pk)
    wrong = basic_auth(webhook, secret="guessed")

    answers = [post(client, webhook, "bounce", sample, auth=wrong).status_code for _ in range(3)]
    answers.append(post(client, webhook, "bounce", sample).status_code)  # right, but refused meanwhile

    assert answers == [400, 400, 400, 429]
    assert contact_status(row) == Contact.Status.SUBSCRIBED


def test_a_regenerated_url_replaces_the_old_one(client, marketer):
    webhook = webhook_of(marketer, Esp.POSTMARK)
    old_token = webhook.token
    row = sent_email(webhook.account, "gone@example.org")

    renewed = esp_webhooks.regenerate(account=webhook.account)

    sample = Sample(recipient="gone@example.org", email_id=row.pk)
    assert post(client, webhook, "bounce", sample, token=old_token).status_code == 404
    assert post(client, renewed, "bounce", sample).status_code == 200


# --- Amazon SES through SNS ------------------------------------------------------------------------


@pytest.fixture
def sns_server(tls_files, settings):
    settings.SNS_HOST_PATTERN = r"localhost:\d+"
    settings.SNS_CA_FILE = str(tls_files.ca_file)
    sns.forget_certificates()
    server = SnsServer(tls_files).start()
    yield server
    server.stop()
    sns.forget_certificates()


def post_sns(client, webhook, message, **auth):
    return client.post(
        f"/esp/{webhook.token}/",
        data=json.dumps(message),
        content_type="text/plain; charset=UTF-8",
        headers=basic_auth(webhook, **auth),
    )


def test_ses_subscription_is_confirmed_then_its_bounces_applied(client, marketer, sns_server):
    webhook = webhook_of(marketer, Esp.AMAZON_SES)
    row = sent_email(webhook.account, "gone@example.org")
    confirmation = sns_server.subscription_confirmation()

    assert post_sns(client, webhook, confirmation).status_code == 200
    assert len(sns_server.confirmed) == 1
    bounce = sns_server.notification(ses_bounce("gone@example.org", email_id=row.pk), version="2")
    assert post_sns(client, webhook, bounce).status_code == 200

    assert contact_status(row) == Contact.Status.BOUNCED
    row.refresh_from_db()
    assert (row.bounce_kind, row.bounce_status) == (Email.BounceKind.HARD, "5.1.1")


def test_ses_forgeries_are_refused(client, marketer, sns_server):
    webhook = webhook_of(marketer, Esp.AMAZON_SES)
    row = sent_email(webhook.account, "gone@example.org")
    bounce = sns_server.notification(ses_bounce("gone@example.org", email_id=row.pk))
    tampered = {**bounce, "Message": json.dumps(ses_bounce("gone@example.org", email_id=row.pk + 1))}
    elsewhere = sns_server.notification(
        ses_bounce("gone@example.org", email_id=row.pk), certificate_url="https://attacker.example/cert.pem"
    )

    assert post_sns(client, webhook, tampered).status_code == 400
    assert post_sns(client, webhook, elsewhere).status_code == 400
    assert post_sns(client, webhook, bounce, secret="guessed").status_code == 400
    assert contact_status(row) == Contact.Status.SUBSCRIBED


# --- the metadata header, on a message sent through aiosmtpd ----------------------------------------


@pytest.mark.parametrize(
    ("esp_name", "header", "value"),
    [
        (Esp.MAILGUN, "X-Mailgun-Variables", '{{"email_id": "{id}"}}'),
        (Esp.AMAZON_SES, "X-Metadata", '{{"email_id": "{id}"}}'),
        (Esp.POSTMARK, "X-PM-Metadata-email_id", "{id}"),
    ],
)
def test_an_account_with_an_esp_sends_its_metadata_header(make_engine, esp_name, header, value):
    engine = make_engine(esp=esp_name)
    campaign, batches = engine.claimed_campaign(["reader@example.org"])
    for batch in batches:
        engine.send_batch(batch)

    (received,) = engine.handler.messages
    message = email.message_from_bytes(received.content, policy=email.policy.default)
    row = engine.email(campaign, "reader@example.org")
    assert message[header] == value.format(id=row.pk)


def test_an_account_without_an_esp_sends_no_metadata_header(engine):
    campaign, batches = engine.claimed_campaign(["reader@example.org"])
    for batch in batches:
        engine.send_batch(batch)

    (received,) = engine.handler.messages
    assert b"email_id" not in received.content
