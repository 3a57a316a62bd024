"""Each ESP's post read into events (bounces.esp.read_post): signed samples, forged ones refused."""

import base64

import pytest
from django.test import RequestFactory

from bounces import esp
from sending import esp_webhooks
from sending.esp import Esp
from tests.bounces.esp_samples import COMPLAINING_ESPS, SIGNING_ESPS, SIGNING_KEYS, Sample, post_for
from tests.factories import SmtpAccountFactory

ANYMAIL_ESPS = [e for e in Esp if e != Esp.AMAZON_SES]
# What each ESP's sample says about the email: Postal and MailerSend echo no metadata sent over SMTP.
ECHOES_METADATA = {e: e not in (Esp.POSTAL, Esp.MAILERSEND) for e in ANYMAIL_ESPS}


def webhook_of(marketer, esp_name, *, signing_key=None):
    account = SmtpAccountFactory(owner=marketer, esp=esp_name)
    webhook = esp_webhooks.ensure_webhook(account=account)
    key = SIGNING_KEYS.get(esp_name, "") if signing_key is None else signing_key
    if key:
        esp_webhooks.set_signing_key(account=account, signing_key=key)
    webhook.refresh_from_db()
    return webhook


def basic_auth(webhook, secret=None):
    credentials = f"{esp_webhooks.ESP_WEBHOOK_USER}:{secret or webhook.get_secret()}"
    return {"Authorization": "Basic " + base64.b64encode(credentials.encode()).decode()}


def read(webhook, kind, sample, *, forged=False, auth=None):
    kwargs = post_for(webhook.account.esp, kind, sample, url=esp_webhooks.webhook_url(webhook), forged=forged)
    headers = {**kwargs.pop("headers"), **(auth if auth is not None else basic_auth(webhook))}
    request = RequestFactory().post(
        f"/esp/{webhook.token}/", data=kwargs["data"], content_type=kwargs["content_type"], headers=headers
    )
    return esp.read_post(request=request, webhook=webhook)


@pytest.mark.parametrize("esp_name", ANYMAIL_ESPS)
def test_a_signed_hard_bounce_is_read_with_its_email_and_recipient(marketer, esp_name):
    webhook = webhook_of(marketer, esp_name)

    (event,) = read(webhook, "bounce", Sample(recipient="Gone@Example.org", email_id=41))

    assert event.kind == esp.Kind.HARD_BOUNCE
    assert event.recipient == "gone@example.org"
    assert event.email_id == (41 if ECHOES_METADATA[esp_name] else None)


@pytest.mark.parametrize("esp_name", COMPLAINING_ESPS)
def test_a_complaint_is_read_as_one(marketer, esp_name):
    webhook = webhook_of(marketer, esp_name)

    (event,) = read(webhook, "complaint", Sample(recipient="angry@example.org", email_id=7))

    assert event.kind == esp.Kind.COMPLAINT
    assert event.recipient == "angry@example.org"


@pytest.mark.parametrize("esp_name", ANYMAIL_ESPS)
def test_deliveries_are_read_and_delays_ignored(marketer, esp_name):
    webhook = webhook_of(marketer, esp_name)
    sample = Sample(recipient="fine@example.org", email_id=3)

    assert [e.kind for e in read(webhook, "delivery", sample)] == [esp.Kind.DELIVERY]
    assert [e.kind for e in read(webhook, "deferred", sample)] in ([esp.Kind.IGNORED], [esp.Kind.SOFT_BOUNCE])


@pytest.mark.parametrize("esp_name", SIGNING_ESPS)
def test_a_post_signed_with_another_key_is_refused(marketer, esp_name):
    webhook = webhook_of(marketer, esp_name)

    with pytest.raises(esp.Refused):
        read(webhook, "bounce", Sample(recipient="gone@example.org", email_id=41), forged=True)


@pytest.mark.parametrize("esp_name", ANYMAIL_ESPS)
def test_wrong_or_missing_basic_auth_is_refused(marketer, esp_name):
    webhook = webhook_of(marketer, esp_name)
    sample = Sample(recipient="gone@example.org", email_id=41)

    with pytest.raises(esp.Refused):
        read(webhook, "bounce", sample, auth=basic_auth(webhook, secret="guessed"))
    with pytest.raises(esp.Refused):
        read(webhook, "bounce", sample, auth={})


@pytest.mark.parametrize("esp_name", [Esp.MAILGUN, Esp.MANDRILL, Esp.POSTAL, Esp.MAILERSEND])
def test_an_esp_that_signs_is_refused_until_its_key_is_stored(marketer, esp_name):
    webhook = webhook_of(marketer, esp_name, signing_key="")

    with pytest.raises(esp.Refused, match="signing key"):
        read(webhook, "bounce", Sample(recipient="gone@example.org", email_id=41))


def test_soft_bounces_are_told_from_hard_ones(marketer):
    webhook = webhook_of(marketer, Esp.BREVO)
    kwargs = post_for(Esp.BREVO, "bounce", Sample(recipient="full@example.org", email_id=5))
    kwargs["data"] = kwargs["data"].replace('"hard_bounce"', '"soft_bounce"')
    request = RequestFactory().post(
        "/esp/x/", data=kwargs["data"], content_type=kwargs["content_type"], headers=basic_auth(webhook)
    )

    (event,) = esp.read_post(request=request, webhook=webhook)

    assert event.kind == esp.Kind.SOFT_BOUNCE


def test_a_post_that_is_no_tracking_event_is_unreadable(marketer):
    webhook = webhook_of(marketer, Esp.POSTMARK)
    request = RequestFactory().post(
        "/esp/x/", data="[1, 2", content_type="application/json", headers=basic_auth(webhook)
    )

    with pytest.raises(esp.Unreadable):
        esp.read_post(request=request, webhook=webhook)
