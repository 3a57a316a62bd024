"""What the admin shows a marketer for a form: the hosted page's address and the HTML to paste elsewhere."""

from django.conf import settings
from django.template.loader import render_to_string
from django.urls import reverse

from contacts.models import SubscriptionForm
from contacts.subscriptions import tokens
from contacts.subscriptions.forms import HONEYPOT_FIELD, TOKEN_FIELD, attribute_field_name


def hosted_url(*, form: SubscriptionForm) -> str:
    return settings.SITE_URL + reverse("subscriptions:page", args=[tokens.page_token(form_id=form.pk)])


def snippet_html(*, form: SubscriptionForm) -> str:
    """A plain <form> posting to the hosted page (no script): its answers and errors show there."""
    return (
        render_to_string(
            "subscriptions/embed_snippet.html",
            {
                "action": hosted_url(form=form),
                "form": form,
                "token_field": TOKEN_FIELD,
                "token": tokens.post_token(form_id=form.pk),
                "honeypot_field": HONEYPOT_FIELD,
                "attributes": [(attribute, attribute_field_name(attribute)) for attribute in form.attributes_asked],
            },
        ).strip()
        + "\n"
    )
