"""Saving an SMTP account in the admin writes the columns its form edits, and nothing else: the
sending engine's fields (the pacing clock, the learned rate, pauses, backoff) are the workers', and
they change while a marketer's form is read, checked and saved."""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from delivery import adaptive_rate, rate_limit
from sending import services
from sending.forms import SmtpAccountForm
from sending.models import SmtpAccount
from tests.factories import SmtpAccountFactory
from tests.sending.account_forms import NO_BOUNCE_MAILBOX
from tests.sending.test_smtp_presets import as_browser_sends, form_errors

pytestmark = pytest.mark.django_db

ENGINE_FIELDS = (
    "next_send_at",
    "learned_per_minute",
    "observed_limit_per_minute",
    "rate_note",
    "rate_changed_at",
    "last_throttled_at",
    "paused_until",
    "pause_reason",
    "backoff_seconds",
    "backoff_until",
    "unreachable_since",
    "last_connection_error",
    "last_connection_error_at",
)


def engine_values(account_id):
    return SmtpAccount.objects.values(*ENGINE_FIELDS).get(pk=account_id)


def the_engine_writes_while_the_form_is_checked(monkeypatch, account_id):
    """The workers' writes, made by the engine's own functions at the moment the worst interleaving
    puts them: after the admin read the row for this POST and before it saves."""
    clean = SmtpAccountForm.clean
    written = {}

    def clean_while_sending(form):
        cleaned = clean(form)
        now = timezone.now()
        rate_limit.reserve_slots(account_id=account_id, now=now, wanted=3)
        adaptive_rate.on_throttled(account_id=account_id, code=421, text="4.7.0 slow down", now=now)
        services.back_off_account(account_id=account_id, error="connection refused", now=now)
        services.pause_account(account_id=account_id, reason="552 quota exceeded", now=now, seconds=600)
        written.update(engine_values(account_id))
        return cleaned

    monkeypatch.setattr(SmtpAccountForm, "clean", clean_while_sending)
    return written


@pytest.mark.parametrize("who", ["marketer", "superuser"])
@pytest.mark.parametrize("password", ["kept", "new", "cleared"])
def test_saving_the_form_keeps_what_the_engine_wrote_meanwhile(request, monkeypatch, marketer, who, password):
    client = request.getfixturevalue(f"{who}_client")
    account = SmtpAccountFactory(owner=marketer, raw_password="old-secret", max_per_minute=30)
    url = reverse("admin:sending_smtpaccount_change", args=[account.pk])
    page = client.get(url)
    assert page.status_code == 200
    data = {**as_browser_sends(page.context["adminform"].form), **NO_BOUNCE_MAILBOX}
    data.update(name="Renamed", max_per_minute="20")
    if password == "new":
        data["new_password"] = "new-secret"
    elif password == "cleared":
        data["clear_password"] = "on"
    written = the_engine_writes_while_the_form_is_checked(monkeypatch, account.pk)

    response = client.post(url, data)

    assert response.status_code == 302, form_errors(response)
    account.refresh_from_db()
    assert (account.name, account.max_per_minute, account.owner_id) == ("Renamed", 20, marketer.pk)
    assert account.get_password() == {"kept": "old-secret", "new": "new-secret", "cleared": ""}[password]
    assert written["next_send_at"] is not None and written["learned_per_minute"] is not None
    assert written["paused_until"] > timezone.now() + timedelta(minutes=5) and written["backoff_seconds"] > 0
    assert engine_values(account.pk) == written
    assert account.updated_at > account.created_at


def test_a_preset_chosen_on_the_change_form_is_saved_with_the_engine_fields_kept(
    monkeypatch, marketer, marketer_client
):
    account = SmtpAccountFactory(owner=marketer, host="smtp.old.example", port=25)
    url = reverse("admin:sending_smtpaccount_change", args=[account.pk])
    data = {**as_browser_sends(marketer_client.get(url).context["adminform"].form), **NO_BOUNCE_MAILBOX}
    data["preset"] = "gmail"
    written = the_engine_writes_while_the_form_is_checked(monkeypatch, account.pk)

    response = marketer_client.post(url, data)

    assert response.status_code == 302, form_errors(response)
    account.refresh_from_db()
    assert (account.host, account.port) == ("smtp.gmail.com", 587)
    assert engine_values(account.pk) == written
