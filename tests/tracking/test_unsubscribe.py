"""Unsubscribe: GET changes nothing, POST (RFC 8058 one-click too) unsubscribes at once and idempotently."""

import pytest
from django.utils import timezone

from campaigns import ledger
from campaigns.models import Campaign, Email
from contacts.models import Contact
from delivery import message
from tests.factories import CampaignFactory, ContactFactory, ContactListFactory, EmailFactory
from tracking import tokens
from tracking.models import Event

pytestmark = pytest.mark.django_db


def unsubscribe_path(email_id):
    return f"/t/u/{tokens.unsubscribe_token(email_id)}/"


def test_the_message_header_url_is_the_unsubscribe_page(sent_email):
    assert message.unsubscribe_url(sent_email.pk).endswith(unsubscribe_path(sent_email.pk))


def test_get_shows_the_owners_organization_with_one_button_and_changes_nothing(anonymous, sent_email):
    for _ in range(2):
        response = anonymous.get(unsubscribe_path(sent_email.pk), HTTP_USER_AGENT="Mimecast link scanner")
        assert response.status_code == 200
    body = response.content.decode()
    assert "Olga&#x27;s Bakery" in body
    assert body.count("<button") == 1 and 'method="post"' in body
    assert "reader@example.org" not in body
    assert "no-store" in response["Cache-Control"]
    sent_email.refresh_from_db()
    sent_email.contact.refresh_from_db()
    assert sent_email.unsubscribed_at is None and sent_email.contact.status == Contact.Status.SUBSCRIBED
    assert not Event.objects.exists()
    assert anonymous.head(unsubscribe_path(sent_email.pk)).status_code == 200


@pytest.mark.parametrize("encoding", ["form", "multipart"])
def test_an_rfc_8058_one_click_post_without_cookie_or_csrf_token_unsubscribes(anonymous, sent_email, encoding):
    path = unsubscribe_path(sent_email.pk)
    if encoding == "form":
        response = anonymous.post(path, "List-Unsubscribe=One-Click", content_type="application/x-www-form-urlencoded")
    else:
        response = anonymous.post(path, {"List-Unsubscribe": "One-Click"})  # multipart/form-data
    assert response.status_code == 200
    assert "unsubscribed" in response.content.decode()
    assert not anonymous.cookies
    sent_email.refresh_from_db()
    sent_email.contact.refresh_from_db()
    assert sent_email.unsubscribed_at is not None
    assert sent_email.contact.status == Contact.Status.UNSUBSCRIBED
    assert sent_email.contact.status_changed_at is not None
    event = Event.objects.get()
    assert (event.kind, event.email_id, event.campaign_id) == ("unsubscribe", sent_email.pk, sent_email.campaign_id)


def test_a_repeated_post_still_answers_200_and_records_once(anonymous, sent_email):
    path = unsubscribe_path(sent_email.pk)
    assert anonymous.post(path, {"List-Unsubscribe": "One-Click"}).status_code == 200
    sent_email.refresh_from_db()
    first = sent_email.unsubscribed_at
    assert anonymous.post(path, {"List-Unsubscribe": "One-Click"}).status_code == 200
    assert anonymous.post(path).status_code == 200
    sent_email.refresh_from_db()
    assert sent_email.unsubscribed_at == first
    assert Event.objects.filter(kind="unsubscribe").count() == 1
    assert "already unsubscribed" in anonymous.get(path).content.decode()


def test_pending_emails_to_the_contact_in_every_campaign_of_the_owner_are_cancelled(anonymous, sent_email, owner):
    contact = sent_email.contact
    pending = EmailFactory(campaign=CampaignFactory(owner=owner), contact=contact)
    deferred = EmailFactory(campaign=CampaignFactory(owner=owner), contact=contact, status=Email.Status.DEFERRED)
    someone_else = EmailFactory(campaign=pending.campaign)
    anonymous.post(unsubscribe_path(sent_email.pk), {"List-Unsubscribe": "One-Click"})
    statuses = dict(Email.objects.values_list("pk", "status"))
    assert statuses[pending.pk] == statuses[deferred.pk] == Email.Status.CANCELLED
    assert statuses[someone_else.pk] == Email.Status.PENDING
    assert statuses[sent_email.pk] == Email.Status.SENT


def test_the_unsubscribed_contact_is_left_out_of_the_next_campaign(anonymous, sent_email, owner):
    stays = ContactFactory(owner=owner, email="stays@example.org")
    contact_list = ContactListFactory(owner=owner, contacts=[sent_email.contact, stays])
    anonymous.post(unsubscribe_path(sent_email.pk), {"List-Unsubscribe": "One-Click"})
    next_campaign = CampaignFactory(owner=owner, lists=[contact_list])
    ledger.materialise(campaign_id=next_campaign.pk, now=timezone.now())
    assert list(Email.objects.filter(campaign=next_campaign).values_list("to_email", flat=True)) == [
        "stays@example.org"
    ]


def test_a_bounced_contact_stays_bounced(anonymous, sent_email):
    Contact.objects.filter(pk=sent_email.contact_id).update(status=Contact.Status.BOUNCED)
    assert anonymous.post(unsubscribe_path(sent_email.pk)).status_code == 200
    sent_email.contact.refresh_from_db()
    assert sent_email.contact.status == Contact.Status.BOUNCED


@pytest.mark.parametrize("method", ["get", "post"])
def test_forged_foreign_purpose_and_deleted_campaign_tokens_get_404_and_change_nothing(anonymous, sent_email, method):
    do = getattr(anonymous, method)
    for token in (
        "forged.AAAA",
        f"{sent_email.pk}.AAAA",
        tokens.open_token(sent_email.pk),
        tokens.click_token(sent_email.pk, 1),
    ):
        assert do(f"/t/u/{token}/").status_code == 404
    path = unsubscribe_path(sent_email.pk)
    contact = sent_email.contact
    Campaign.objects.filter(pk=sent_email.campaign_id).delete()
    assert do(path).status_code == 404
    contact.refresh_from_db()
    assert contact.status == Contact.Status.SUBSCRIBED and not Event.objects.exists()


def test_the_preview_link_changes_nothing(anonymous, sent_email):
    assert anonymous.get("/t/u/preview/").status_code == 200
    assert anonymous.post("/t/u/preview/").status_code == 200
    assert not Event.objects.exists()


def test_the_mailto_is_the_bounce_address_or_the_operators_or_none(sent_email, settings):
    account = sent_email.campaign.smtp_account
    settings.UNSUBSCRIBE_MAILTO = ""
    assert message.unsubscribe_mailto(sent_email.pk, account=account) == ""
    settings.UNSUBSCRIBE_MAILTO = "unsubscribe@lists.example.org"
    subject = f"subject=unsubscribe%20{tokens.unsubscribe_token(sent_email.pk)}"
    assert (
        message.unsubscribe_mailto(sent_email.pk, account=account) == f"mailto:unsubscribe@lists.example.org?{subject}"
    )
    account.bounce_address = "bounces@mail.alice.example"
    assert message.unsubscribe_mailto(sent_email.pk, account=account) == f"mailto:bounces@mail.alice.example?{subject}"
