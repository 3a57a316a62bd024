"""The subscription form's admin: owner-scoped choices, the hosted URL and the snippet, clear errors."""

import html
import re

import pytest
from django.urls import reverse

from contacts.models import Contact, SubscriptionForm
from contacts.subscriptions import embed, tokens
from tests.factories import ContactFactory, ContactListFactory, SmtpAccountFactory, SubscriptionFormFactory

pytestmark = pytest.mark.django_db

ADD_URL = reverse("admin:contacts_subscriptionform_add")


@pytest.fixture
def own(marketer):
    return ContactListFactory(owner=marketer, name="Alice list"), SmtpAccountFactory(owner=marketer, name="Alice SMTP")


@pytest.fixture
def foreign(other_marketer):
    return (
        ContactListFactory(owner=other_marketer, name="Mallory list"),
        SmtpAccountFactory(owner=other_marketer, name="Mallory SMTP"),
    )


def post_data(contact_list, account, **fields):
    return {
        "title": "Join us",
        "contact_list": contact_list.pk,
        "smtp_account": account.pk,
        "consent_text": "Send me the newsletter.",
        "attributes_asked": "City, Company",
        "double_opt_in": "on",
        "enabled": "on",
        **fields,
    }


def test_the_add_form_offers_only_own_lists_and_accounts_and_defaults_to_double_opt_in(marketer_client, own, foreign):
    response = marketer_client.get(ADD_URL)
    form = response.context["adminform"].form
    assert list(form.fields["contact_list"].queryset) == [own[0]]
    assert list(form.fields["smtp_account"].queryset) == [own[1]]
    assert form.initial.get("double_opt_in", form.fields["double_opt_in"].initial) is True
    assert "Mallory" not in response.content.decode()


@pytest.mark.parametrize("which", ["contact_list", "smtp_account"])
def test_another_owners_list_or_account_is_refused(marketer_client, own, foreign, which):
    data = post_data(*own)
    data[which] = foreign[0 if which == "contact_list" else 1].pk
    response = marketer_client.post(ADD_URL, data)
    assert response.status_code == 200
    assert which in response.context["adminform"].form.errors
    assert not SubscriptionForm.objects.exists()


def test_saving_stores_the_attributes_and_the_change_page_shows_the_hosted_url_and_snippet(
    marketer_client, marketer, own
):
    response = marketer_client.post(ADD_URL, post_data(*own, attributes_asked="City, Company, City"))
    assert response.status_code == 302
    form = SubscriptionForm.objects.get()
    assert form.owner == marketer and form.attributes_asked == ["City", "Company"]

    page = marketer_client.get(reverse("admin:contacts_subscriptionform_change", args=[form.pk])).content.decode()
    assert embed.hosted_url(form=form) in page
    textarea = re.search(r'<textarea [^>]*id="embed-snippet"[^>]*>(.*?)</textarea>', page, re.S)
    snippet = html.unescape(textarea.group(1))
    assert snippet == embed.snippet_html(form=form)
    assert tokens.post_token(form_id=form.pk) in snippet and 'name="attr_Company"' in snippet
    assert 'value="City, Company"' in page  # shown as typed


@pytest.mark.parametrize(
    "names, message",
    [
        ("email", "“email” is asked on every form already."),
        ("City, 1st choice", "“1st choice” is not an attribute name"),
    ],
)
def test_a_bad_attribute_name_is_a_clear_error_and_keeps_the_form(marketer_client, own, names, message):
    response = marketer_client.post(ADD_URL, post_data(*own, attributes_asked=names, title="Keep me"))
    assert response.status_code == 200
    assert message in str(response.context["adminform"].form.errors["attributes_asked"])
    assert 'value="Keep me"' in response.content.decode()
    assert not SubscriptionForm.objects.exists()


def test_the_contact_page_shows_consent_read_only(marketer_client, marketer):
    form = SubscriptionFormFactory(owner=marketer)
    contact = ContactFactory(owner=marketer, consent_form=form, consent_text="Agreed words", consent_ip_hash="ab" * 32)
    response = marketer_client.get(reverse("admin:contacts_contact_change", args=[contact.pk]))
    form_fields = response.context["adminform"].form.fields
    assert not {"consent_at", "consent_form", "consent_text", "consent_ip_hash"} & set(form_fields)
    assert "Agreed words" in response.content.decode()
    marketer_client.post(
        reverse("admin:contacts_contact_change", args=[contact.pk]),
        {
            "email": contact.email,
            "name": "X",
            "attributes": "{}",
            "consent_text": "forged",
        },
    )
    assert Contact.objects.get(pk=contact.pk).consent_text == "Agreed words"


def test_another_owners_form_answers_404(other_client, marketer):
    form = SubscriptionFormFactory(owner=marketer)
    for view in ("change", "delete", "history"):
        assert other_client.get(reverse(f"admin:contacts_subscriptionform_{view}", args=[form.pk])).status_code == 404
