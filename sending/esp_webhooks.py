"""Writes for an account's ESP webhook (EspWebhook): its URL token, its secrets, its counters.

The one writer of EspWebhook rows. The URL a marketer pastes into the ESP's console is
`https://ESP_WEBHOOK_USER:<secret>@<site>/esp/<token>/`: the token says which account, the secret
(basic auth, which every ESP can send) proves the sender knows it, and the ESP's own signature,
where it signs, proves the ESP sent it.
"""

import secrets
from datetime import datetime
from urllib.parse import quote, urlsplit, urlunsplit

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.urls import reverse

from sending import crypto
from sending.models import EspWebhook, SmtpAccount

# Basic auth's user name: the secret alone is what is checked, the name only has to be there.
ESP_WEBHOOK_USER = "esp"


def _new_token() -> str:
    return secrets.token_urlsafe(24)


def _new_secret() -> str:
    return secrets.token_urlsafe(24)


def ensure_webhook(*, account: SmtpAccount) -> EspWebhook | None:
    """The account's webhook, made with a fresh token and secret the first time its ESP is set;
    None while it names no ESP (a webhook kept from an earlier ESP is kept, and refused meanwhile)."""
    if not account.esp:
        return None
    webhook, _ = EspWebhook.objects.get_or_create(
        account=account, defaults={"token": _new_token(), "secret": crypto.encrypt(_new_secret())}
    )
    return webhook


def configure(*, account: SmtpAccount, signing_key: str | None) -> EspWebhook | None:
    """After the account's form is saved: its webhook made if it names an ESP now, and the signing key
    stored when one was typed ("" removes it; None keeps it)."""
    webhook = ensure_webhook(account=account)
    if webhook is not None and signing_key is not None:
        set_signing_key(account=account, signing_key=signing_key)
    return webhook


def regenerate(*, account: SmtpAccount) -> EspWebhook | None:
    """A new URL token and basic-auth secret: the old URL stops working at once."""
    webhook = ensure_webhook(account=account)
    if webhook is None:
        return None
    webhook.token = _new_token()
    webhook.secret = crypto.encrypt(_new_secret())
    webhook.save(update_fields=["token", "secret"])
    return webhook


def set_signing_key(*, account: SmtpAccount, signing_key: str) -> None:
    """Store the ESP's signing key, typed by the marketer ("" removes it)."""
    webhook = ensure_webhook(account=account)
    if webhook is None:
        return
    cleaned = _one_line_key(signing_key)
    webhook.signing_key = crypto.encrypt(cleaned) if cleaned else ""
    webhook.save(update_fields=["signing_key"])


def _one_line_key(key: str) -> str:
    """A key as pasted: surrounding space dropped; a PEM public key's BEGIN/END lines and line breaks
    dropped too, as the ESPs' verifiers want its body alone."""
    lines = [line.strip() for line in key.strip().splitlines()]
    if any(line.startswith("-----BEGIN") for line in lines):
        return "".join(line for line in lines if line and not line.startswith("-----"))
    return key.strip()


def note_events(*, webhook_id: int, count: int, now: datetime) -> None:
    """Count the events of one accepted post (an ESP's test post counts too: it proves the setup)."""
    EspWebhook.objects.filter(pk=webhook_id).update(events_received=F("events_received") + count, last_event_at=now)


def rotate_secrets() -> int:
    """Re-encrypt every webhook's secrets with the newest key; returns the number of rows rewritten."""
    rotated = 0
    with transaction.atomic():
        for webhook in EspWebhook.objects.select_for_update().only("pk", "secret", "signing_key"):
            try:
                secret = crypto.rotate(webhook.secret)
                signing_key = crypto.rotate(webhook.signing_key) if webhook.signing_key else ""
            except crypto.DecryptionError as exc:
                raise crypto.DecryptionError(f"ESP webhook {webhook.pk}: {exc}") from exc
            EspWebhook.objects.filter(pk=webhook.pk).update(secret=secret, signing_key=signing_key)
            rotated += 1
    return rotated


def webhook_url(webhook: EspWebhook) -> str:
    """The full URL to paste into the ESP's console, basic-auth credentials included."""
    site = urlsplit(settings.SITE_URL + reverse("esp_webhook", args=[webhook.token]))
    credentials = f"{ESP_WEBHOOK_USER}:{quote(webhook.get_secret(), safe='')}"
    return urlunsplit(site._replace(netloc=f"{credentials}@{site.netloc}"))
