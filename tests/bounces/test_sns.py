"""Amazon SES through SNS: signatures checked against a certificate fetched from SNS's host (here a
local HTTPS server with a test CA), subscriptions confirmed, SES notifications read."""

import json

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from django.test import RequestFactory

from bounces import esp, sns
from config import settings as project_settings
from sending.esp import Esp
from tests.bounces.sns_server import SnsServer, ses_bounce, ses_complaint
from tests.bounces.test_esp_reading import basic_auth, webhook_of


@pytest.fixture
def sns_server(tls_files, settings):
    settings.SNS_HOST_PATTERN = r"localhost:\d+"
    settings.SNS_CA_FILE = str(tls_files.ca_file)
    sns.forget_certificates()
    server = SnsServer(tls_files).start()
    yield server
    server.stop()
    sns.forget_certificates()


@pytest.fixture
def ses_webhook(marketer):
    return webhook_of(marketer, Esp.AMAZON_SES)


def read(webhook, message, *, auth=None):
    request = RequestFactory().post(
        f"/esp/{webhook.token}/",
        data=json.dumps(message),
        content_type="text/plain; charset=UTF-8",  # what SNS sends
        headers=auth if auth is not None else basic_auth(webhook),
    )
    return esp.read_post(request=request, webhook=webhook)


def test_a_signed_subscription_confirmation_is_confirmed_at_its_subscribe_url(sns_server, ses_webhook):
    message = sns_server.subscription_confirmation()

    assert read(ses_webhook, message) == []

    assert sns_server.confirmed == [message["SubscribeURL"].removeprefix(sns_server.base)]


@pytest.mark.parametrize("version", ["1", "2"])
def test_a_signed_bounce_notification_is_read(sns_server, ses_webhook, version):
    message = sns_server.notification(ses_bounce("Gone@Example.org", email_id=41), version=version)

    (event,) = read(ses_webhook, message)

    assert event == esp.EspEvent(
        kind=esp.Kind.HARD_BOUNCE,
        recipient="gone@example.org",
        email_id=41,
        description="Permanent General: smtp; 550 5.1.1 user unknown",
    )


def test_transient_bounces_are_soft_and_complaints_complaints(sns_server, ses_webhook):
    transient = sns_server.notification(ses_bounce("full@example.org", email_id=5, bounce_type="Transient"))
    complaint = sns_server.notification(ses_complaint("angry@example.org", email_id=6))

    assert [e.kind for e in read(ses_webhook, transient)] == [esp.Kind.SOFT_BOUNCE]
    assert [(e.kind, e.email_id) for e in read(ses_webhook, complaint)] == [(esp.Kind.COMPLAINT, 6)]


def test_the_signing_certificate_is_fetched_once(sns_server, ses_webhook):
    for address in ("a@example.org", "b@example.org", "c@example.org"):
        read(ses_webhook, sns_server.notification(ses_bounce(address)))

    assert sns_server.certificate_fetches == 1


def test_a_message_signed_with_another_key_is_refused(sns_server, ses_webhook):
    other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    message = sns_server.notification(ses_bounce("gone@example.org", email_id=41), key=other_key)

    with pytest.raises(esp.Refused, match="signature"):
        read(ses_webhook, message)


def test_a_changed_message_is_refused(sns_server, ses_webhook):
    message = sns_server.notification(ses_bounce("gone@example.org", email_id=41))
    message["Message"] = json.dumps(ses_bounce("someone-else@example.org", email_id=42))

    with pytest.raises(esp.Refused, match="signature"):
        read(ses_webhook, message)


@pytest.mark.parametrize(
    "certificate_url",
    [
        "https://attacker.example/SimpleNotificationService-0123.pem",
        "https://sns.eu-west-1.amazonaws.com.attacker.example/cert.pem",
        "http://localhost:{port}/SimpleNotificationService-0123.pem",
        "https://user:pass@localhost:{port}/SimpleNotificationService-0123.pem",
    ],
)
def test_a_certificate_anywhere_but_an_sns_host_is_refused_unfetched(sns_server, ses_webhook, certificate_url):
    port = sns_server.base.rsplit(":", 1)[1]
    message = sns_server.notification(ses_bounce("gone@example.org"), certificate_url=certificate_url.format(port=port))

    with pytest.raises(esp.Refused, match="SigningCertURL"):
        read(ses_webhook, message)
    assert sns_server.certificate_fetches == 0


def test_a_subscribe_url_elsewhere_is_never_fetched(sns_server, ses_webhook):
    message = sns_server.subscription_confirmation()
    unsigned = {k: v for k, v in message.items() if k not in ("Signature", "SignatureVersion", "SigningCertURL")}
    unsigned["SubscribeURL"] = "https://attacker.example/confirm?Token=x"
    message = sns_server.sign(unsigned)

    with pytest.raises(esp.Refused, match="SubscribeURL"):
        read(ses_webhook, message)
    assert sns_server.confirmed == []


def test_the_default_pattern_takes_only_amazon_sns_hosts(settings):
    settings.SNS_HOST_PATTERN = project_settings.SNS_HOST_PATTERN
    assert sns._sns_url("https://sns.eu-west-1.amazonaws.com/x.pem", "SigningCertURL")
    assert sns._sns_url("https://sns.cn-north-1.amazonaws.com.cn/x.pem", "SigningCertURL")
    for url in ("https://sns.eu-west-1.amazonaws.com.evil.example/x.pem", "https://evil.example/x.pem"):
        with pytest.raises(sns.SnsRefused):
            sns._sns_url(url, "SigningCertURL")


def test_wrong_basic_auth_is_refused_before_anything_is_fetched(sns_server, ses_webhook):
    message = sns_server.subscription_confirmation()

    with pytest.raises(esp.Refused, match="basic auth"):
        read(ses_webhook, message, auth=basic_auth(ses_webhook, secret="guessed"))
    assert sns_server.confirmed == [] and sns_server.certificate_fetches == 0
