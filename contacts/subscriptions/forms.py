"""The public sign-up form, built from a SubscriptionForm: email, name, the attributes it asks, a honeypot."""

from django import forms

from contacts.addresses import ContactEmailFormField
from contacts.models import SubscriptionForm
from contacts.subscriptions import tokens

# Named like a field people fill in, so that bots do; people never see it (hidden by CSS, not by type).
HONEYPOT_FIELD = "website"
TOKEN_FIELD = "form_token"


def attribute_field_name(attribute: str) -> str:
    return f"attr_{attribute}"


class PublicSubscribeForm(forms.Form):
    email = ContactEmailFormField(label="Email address", max_length=254)
    name = forms.CharField(label="Name", max_length=200, required=False)

    def __init__(self, data=None, *, subscription_form: SubscriptionForm, **kwargs):
        super().__init__(data, label_suffix="", **kwargs)
        self.subscription_form = subscription_form
        for attribute in subscription_form.attributes_asked:
            self.fields[attribute_field_name(attribute)] = forms.CharField(
                label=attribute, max_length=200, required=False
            )
        self.fields[HONEYPOT_FIELD] = forms.CharField(required=False, label="Leave this field empty")
        self.fields[TOKEN_FIELD] = forms.CharField(widget=forms.HiddenInput)
        self.initial.setdefault(TOKEN_FIELD, tokens.post_token(form_id=subscription_form.pk))

    def clean_form_token(self):
        if tokens.read_post_token(self.cleaned_data[TOKEN_FIELD]) != self.subscription_form.pk:
            raise forms.ValidationError("This form is out of date. Please reload the page and try again.")
        return self.cleaned_data[TOKEN_FIELD]

    def visible_fields_in_order(self):
        return [self[name] for name in self.fields if name not in (HONEYPOT_FIELD, TOKEN_FIELD)]

    @property
    def attributes(self) -> dict:
        return {a: self.cleaned_data.get(attribute_field_name(a), "") for a in self.subscription_form.attributes_asked}
