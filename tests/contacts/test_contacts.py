"""contacts.services.contacts: the one writer of Contact.status, and the one definition of suppressed."""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from campaigns.models import Email
from contacts.models import Contact
from contacts.services import contacts
from tests.factories import CampaignFactory, ContactFactory, EmailFactory

pytestmark = pytest.mark.django_db

S = Email.Status


def test_suppressed_is_every_status_but_subscribed():
    assert set(Contact.SUPPRESSED_STATUSES) == set(Contact.Status) - {Contact.Status.SUBSCRIBED}


@pytest.mark.parametrize("status", Contact.SUPPRESSED_STATUSES)
def test_suppress_marks_the_contact_and_cancels_its_unsent_emails_in_every_campaign(marketer, status):
    now = timezone.now()
    contact = ContactFactory(owner=marketer)
    rows = {
        row_status: EmailFactory(campaign=CampaignFactory(owner=marketer), contact=contact, status=row_status)
        for row_status in (S.PENDING, S.DEFERRED, S.QUEUED, S.SENT)
    }
    bystander = EmailFactory(campaign=rows[S.PENDING].campaign, status=S.PENDING)

    assert contacts.suppress(contact_ids=[contact.pk], status=status, now=now) == 1

    contact.refresh_from_db()
    assert (contact.status, contact.status_changed_at) == (status, now)
    after = {row_status: Email.objects.get(pk=row.pk).status for row_status, row in rows.items()}
    # A queued row is a worker's: it checks the campaign, not the contact, and sends it.
    assert after == {S.PENDING: S.CANCELLED, S.DEFERRED: S.CANCELLED, S.QUEUED: S.QUEUED, S.SENT: S.SENT}
    assert Email.objects.get(pk=bystander.pk).status == S.PENDING


def test_a_suppressed_contact_keeps_the_first_reason(marketer):
    now = timezone.now()
    contact = ContactFactory(owner=marketer, status=Contact.Status.BOUNCED, status_changed_at=now)
    late = EmailFactory(campaign=CampaignFactory(owner=marketer), contact=contact, status=S.PENDING)
    later = now + timedelta(days=1)
    assert contacts.suppress(contact_ids=[contact.pk], status=Contact.Status.UNSUBSCRIBED, now=later) == 0
    contact.refresh_from_db()
    assert (contact.status, contact.status_changed_at) == (Contact.Status.BOUNCED, now)
    assert Email.objects.get(pk=late.pk).status == S.CANCELLED  # still nothing goes to it


def test_suppress_refuses_a_status_that_is_not_suppressed(marketer):
    contact = ContactFactory(owner=marketer, status=Contact.Status.BOUNCED)
    with pytest.raises(ValueError):
        contacts.suppress(contact_ids=[contact.pk], status=Contact.Status.SUBSCRIBED, now=timezone.now())
    contact.refresh_from_db()
    assert contact.status == Contact.Status.BOUNCED


def test_the_contact_form_no_longer_writes_the_status_and_the_admin_action_unsubscribes(marketer_client, marketer):
    contact = ContactFactory(owner=marketer, email="reader@example.org")
    pending = EmailFactory(campaign=CampaignFactory(owner=marketer), contact=contact, status=S.PENDING)
    change = reverse("admin:contacts_contact_change", args=[contact.pk])
    response = marketer_client.post(
        change, {"email": contact.email, "name": "Reader", "attributes": "{}", "status": "bounced"}
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    contact.refresh_from_db()
    assert (contact.name, contact.status) == ("Reader", Contact.Status.SUBSCRIBED)

    response = marketer_client.post(
        reverse("admin:contacts_contact_changelist"),
        {"action": "unsubscribe_contacts", "_selected_action": [contact.pk]},
    )
    assert response.status_code == 302
    contact.refresh_from_db()
    assert contact.status == Contact.Status.UNSUBSCRIBED
    assert Email.objects.get(pk=pending.pk).status == S.CANCELLED


def test_the_admin_action_reaches_only_the_marketers_own_contacts(marketer_client, other_marketer):
    theirs = ContactFactory(owner=other_marketer)
    marketer_client.post(
        reverse("admin:contacts_contact_changelist"),
        {"action": "unsubscribe_contacts", "_selected_action": [theirs.pk]},
    )
    theirs.refresh_from_db()
    assert theirs.status == Contact.Status.SUBSCRIBED
