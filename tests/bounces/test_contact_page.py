"""A contact's page lists its bounces, refused by the SMTP server or reported after the 250, and its complaints."""

from datetime import timedelta

from django.utils import timezone

from campaigns.models import Email
from tests.factories import CampaignFactory, ContactFactory, EmailFactory


def test_the_contact_page_shows_smtp_refusals_beside_later_bounces_and_complaints(
    marketer_client, marketer, other_marketer
):
    contact = ContactFactory(owner=marketer, email="asha@example.in")
    now = timezone.now()
    EmailFactory(
        campaign=CampaignFactory(owner=marketer, name="Spring"),
        contact=contact,
        status=Email.Status.FAILED,
        failure_class=Email.FailureClass.BOUNCED,
        smtp_code=550,
        smtp_response="5.1.1 no such user",
    )
    EmailFactory(
        campaign=CampaignFactory(owner=marketer, name="Summer"),
        contact=contact,
        status=Email.Status.SENT,
        bounced_at=now - timedelta(hours=2),
        bounce_kind="soft",
        bounce_status="4.2.2",
        bounce_text="452 4.2.2 Mailbox full",
        complained_at=now - timedelta(hours=1),
    )
    EmailFactory(campaign=CampaignFactory(owner=marketer, name="Quiet"), contact=contact, status=Email.Status.SENT)

    page = marketer_client.get(f"/admin/contacts/contact/{contact.pk}/change/").content.decode()

    assert "Bounces and complaints" in page
    assert "Spring · refused when sent: 550 5.1.1 no such user" in page
    assert "Summer · soft bounce after delivery: 4.2.2: 452 4.2.2 Mailbox full" in page
    assert "Summer · complaint (spam report)" in page
    assert "Quiet" not in page

    theirs = ContactFactory(owner=other_marketer, email="asha@example.in")
    assert marketer_client.get(f"/admin/contacts/contact/{theirs.pk}/change/").status_code == 404


def test_a_contact_without_bounces_says_none(marketer_client, marketer):
    contact = ContactFactory(owner=marketer)
    page = marketer_client.get(f"/admin/contacts/contact/{contact.pk}/change/").content.decode()
    assert "Bounces and complaints" in page and "None." in page
