"""The account page's ESP webhook: made when an ESP is chosen, its URL and steps shown to the owner
only, the signing key write-only and encrypted, the URL regenerable."""

from django.urls import reverse

from sending import esp_webhooks
from sending.models import EspWebhook
from tests.factories import SmtpAccountFactory
from tests.sending.test_smtp_password import assert_fernet_token, change_url, form_data

SIGNING_KEY = "key-9f8e7d6c5b4a39281706f5e4d3c2b1a0"


def test_choosing_an_esp_makes_the_webhook_and_stores_the_key_encrypted(marketer, marketer_client):
    account = SmtpAccountFactory(owner=marketer)

    response = marketer_client.post(
        change_url(account), form_data(account, esp="mailgun", new_esp_signing_key=SIGNING_KEY)
    )

    assert response.status_code == 302
    webhook = EspWebhook.objects.get(account=account)
    assert SIGNING_KEY not in webhook.signing_key and webhook.get_signing_key() == SIGNING_KEY
    assert_fernet_token(webhook.signing_key)
    assert_fernet_token(webhook.secret)


def test_the_page_shows_the_url_with_credentials_and_steps_never_the_key(marketer, marketer_client):
    account = SmtpAccountFactory(owner=marketer, esp="mailgun")
    esp_webhooks.configure(account=account, signing_key=SIGNING_KEY)
    webhook = EspWebhook.objects.get(account=account)

    html = marketer_client.get(change_url(account)).content.decode()

    assert f"esp:{webhook.get_secret()}@" in html and f"/esp/{webhook.token}/" in html
    assert "Permanent Failure" in html  # Mailgun's setup steps
    assert "HTTP webhook signing key: stored" in html
    assert SIGNING_KEY not in html and webhook.signing_key not in html


def test_a_blank_key_keeps_the_stored_one_and_remove_clears_it(marketer, marketer_client):
    account = SmtpAccountFactory(owner=marketer, esp="mailgun")
    esp_webhooks.configure(account=account, signing_key=SIGNING_KEY)

    marketer_client.post(change_url(account), form_data(account, esp="mailgun"))
    assert EspWebhook.objects.get(account=account).get_signing_key() == SIGNING_KEY

    marketer_client.post(change_url(account), form_data(account, esp="mailgun", clear_esp_signing_key="on"))
    assert EspWebhook.objects.get(account=account).signing_key == ""


def test_a_key_that_cannot_be_the_esps_is_refused_with_the_reason(marketer, marketer_client):
    account = SmtpAccountFactory(owner=marketer)

    not_a_public_key = marketer_client.post(
        change_url(account), form_data(account, esp="sendgrid", new_esp_signing_key="not a key")
    )
    unsigned_esp = marketer_client.post(
        change_url(account), form_data(account, esp="postmark", new_esp_signing_key="anything")
    )

    assert "This is not a public key" in not_a_public_key.content.decode()
    assert "does not sign its webhooks" in unsigned_esp.content.decode()
    assert not EspWebhook.objects.filter(account=account).exists()


def test_regenerating_gives_a_new_url_and_secret(marketer, marketer_client):
    account = SmtpAccountFactory(owner=marketer, esp="postmark")
    before = esp_webhooks.ensure_webhook(account=account)

    marketer_client.post(
        reverse("admin:sending_smtpaccount_changelist"),
        {"action": "regenerate_esp_webhook", "_selected_action": [account.pk]},
    )

    after = EspWebhook.objects.get(account=account)
    assert after.token != before.token and after.get_secret() != before.get_secret()


def test_another_marketer_sees_no_webhook_of_this_account(marketer, other_client):
    account = SmtpAccountFactory(owner=marketer, esp="postmark")
    esp_webhooks.ensure_webhook(account=account)

    assert other_client.get(change_url(account)).status_code == 404
    other_client.post(
        reverse("admin:sending_smtpaccount_changelist"),
        {"action": "regenerate_esp_webhook", "_selected_action": [account.pk]},
    )
    assert EspWebhook.objects.get(account=account).token == esp_webhooks.ensure_webhook(account=account).token
