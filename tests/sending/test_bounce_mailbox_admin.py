"""The bounce mailbox on its SMTP account's page: write-only password, owner-scoped, tested by a worker."""

import pytest
from django.contrib import messages
from django.test import override_settings
from django.urls import reverse

from sending import services, tasks
from sending.models import BounceMailbox
from tests.conftest import queued_tasks
from tests.factories import SmtpAccountFactory
from tests.sending.test_smtp_presets import as_browser_sends, form_errors

SECRET = "Mailbox-s3cret-PW"

pytestmark = pytest.mark.django_db


def change_url(account):
    return reverse("admin:sending_smtpaccount_change", args=[account.pk])


def page_data(client, account, **mailbox):
    """What the browser posts from the account's page, the mailbox inline filled with `mailbox`."""
    page = client.get(change_url(account))
    assert page.status_code == 200
    data = as_browser_sends(page.context["adminform"].form)
    (formset,) = [inline.formset for inline in page.context["inline_admin_formsets"]]
    data.update(
        {
            f"{formset.prefix}-TOTAL_FORMS": "1",
            f"{formset.prefix}-INITIAL_FORMS": str(formset.initial_form_count()),
            f"{formset.prefix}-MIN_NUM_FORMS": "0",
            f"{formset.prefix}-MAX_NUM_FORMS": "1",
        }
    )
    form = formset.forms[0]
    for name, value in as_browser_sends(form).items():
        data[f"{form.prefix}-{name}"] = value
    if form.instance.pk:
        data[f"{form.prefix}-id"] = str(form.instance.pk)
        data[f"{form.prefix}-account"] = str(account.pk)
    for name, value in mailbox.items():
        data[f"{form.prefix}-{name}"] = str(value)
    return data


def existing_mailbox(account, **values):
    return services.configure_bounce_mailbox(
        account=account,
        protocol=values.get("protocol", "imap"),
        host=values.get("host", "imap.example.com"),
        port=values.get("port", 993),
        security="ssl",
        username="bounces@example.com",
        password=values.get("password", SECRET),
    )


MAILBOX = {"host": "imap.example.com", "port": 993, "username": "bounces@example.com", "protocol": "pop3"}


def test_the_mailbox_is_set_up_on_the_accounts_page_with_its_password_encrypted(marketer, marketer_client):
    account = SmtpAccountFactory(owner=marketer)

    response = marketer_client.post(
        change_url(account), page_data(marketer_client, account, **{**MAILBOX, "port": 995}, new_password=SECRET)
    )

    assert response.status_code == 302, form_errors(response)
    mailbox = BounceMailbox.objects.get(account=account)
    assert (mailbox.protocol, mailbox.host, mailbox.port, mailbox.folder) == ("pop3", "imap.example.com", 995, "INBOX")
    assert SECRET not in mailbox.password and mailbox.get_password() == SECRET
    page = marketer_client.get(change_url(account)).content.decode()
    assert SECRET not in page and mailbox.password not in page
    assert "A password is stored. Leave blank to keep it." in page


def test_an_untouched_mailbox_form_saves_the_account_alone(marketer, marketer_client):
    account = SmtpAccountFactory(owner=marketer)
    data = page_data(marketer_client, account)
    data["name"] = "Renamed"

    response = marketer_client.post(change_url(account), data)

    assert response.status_code == 302, form_errors(response)
    assert not BounceMailbox.objects.filter(account=account).exists()


def test_a_new_mailbox_needs_its_password(marketer, marketer_client):
    account = SmtpAccountFactory(owner=marketer)

    response = marketer_client.post(change_url(account), page_data(marketer_client, account, **MAILBOX))

    assert response.status_code == 200
    assert "The mailbox needs its password." in response.content.decode()
    assert not BounceMailbox.objects.filter(account=account).exists()


def test_a_blank_password_keeps_the_stored_one_and_the_reads_history_stays(marketer, marketer_client):
    account = SmtpAccountFactory(owner=marketer)
    mailbox = existing_mailbox(account)
    data = page_data(marketer_client, account, host="imap2.example.com")
    # A read finishes between the page's load and its save.
    services.record_mailbox_read(mailbox_id=mailbox.pk, processed=7)

    response = marketer_client.post(change_url(account), data)

    assert response.status_code == 302, form_errors(response)
    mailbox.refresh_from_db()
    assert (mailbox.host, mailbox.get_password(), mailbox.processed_count) == ("imap2.example.com", SECRET, 7)


def test_the_port_goes_through_the_destination_guard(marketer, marketer_client):
    account = SmtpAccountFactory(owner=marketer)
    with override_settings(SMTP_ALLOW_PRIVATE_HOSTS=False):
        response = marketer_client.post(
            change_url(account), page_data(marketer_client, account, **{**MAILBOX, "port": 8080}, new_password=SECRET)
        )

    assert response.status_code == 200
    assert "Port 8080 is not allowed for a mailbox; use one of 110, 143, 993, 995." in response.content.decode()


def test_another_marketers_account_and_its_mailbox_are_a_404(marketer, other_marketer, other_client):
    account = SmtpAccountFactory(owner=marketer)
    existing_mailbox(account)

    assert other_client.get(change_url(account)).status_code == 404
    assert other_client.post(change_url(account), {"_test_mailbox": "1"}).status_code == 404
    assert other_client.get(f"/admin/sending/bouncemailbox/{account.bounce_mailbox.pk}/change/").status_code == 404
    assert BounceMailbox.objects.get(account=account).last_tested_at is None


def test_another_marketers_mailbox_cannot_be_posted_through_ones_own_account(marketer, other_marketer, other_client):
    theirs = existing_mailbox(SmtpAccountFactory(owner=marketer))
    mine = SmtpAccountFactory(owner=other_marketer)
    data = page_data(other_client, mine, **MAILBOX, new_password="stolen")
    prefix = "bounce_mailbox-0"
    data.update({"bounce_mailbox-INITIAL_FORMS": "1", f"{prefix}-id": str(theirs.pk), f"{prefix}-account": mine.pk})

    other_client.post(change_url(mine), data)

    theirs.refresh_from_db()
    assert (theirs.account.owner, theirs.protocol, theirs.get_password()) == (marketer, "imap", SECRET)


def test_save_and_test_queues_the_test_for_a_worker(marketer, marketer_client, django_capture_on_commit_callbacks):
    account = SmtpAccountFactory(owner=marketer)
    mailbox = existing_mailbox(account)
    try:
        queued_tasks("celery")  # an empty queue to start from
    except OSError as exc:
        pytest.skip(f"the broker does not answer: {exc}")

    with django_capture_on_commit_callbacks(execute=True):
        response = marketer_client.post(
            change_url(account), {**page_data(marketer_client, account), "_test_mailbox": "1"}
        )

    assert response.status_code == 302 and response.url == change_url(account)
    assert ("sending.test_bounce_mailbox", [mailbox.pk]) in queued_tasks("celery")
    mailbox.refresh_from_db()
    assert mailbox.last_test_result == BounceMailbox.TESTING


def test_the_list_action_tests_the_selected_accounts_mailboxes(marketer, marketer_client):
    with_mailbox = SmtpAccountFactory(owner=marketer, name="With")
    without = SmtpAccountFactory(owner=marketer, name="Without")
    mailbox = existing_mailbox(with_mailbox, host="127.0.0.1", port=1)  # nothing listens there

    response = marketer_client.post(
        reverse("admin:sending_smtpaccount_changelist"),
        {"action": "test_bounce_mailbox", "_selected_action": [with_mailbox.pk, without.pk]},
        follow=True,
    )

    ((level, text),) = [(m.level, m.message) for m in response.context["messages"]]
    assert level == messages.INFO and text.startswith("Testing the bounce mailbox of With…")
    tasks.bounce_mailbox_test(mailbox.pk)  # the worker's part, in this process
    page = marketer_client.get(change_url(with_mailbox)).content.decode()
    assert "Failed: Cannot connect to 127.0.0.1:1: Connection refused" in page
