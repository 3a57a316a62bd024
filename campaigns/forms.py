"""Admin forms of campaigns and templates: the editor widget, sanitised HTML, templates checked on save."""

from django import forms

from campaigns import editor, html_hygiene, personalize
from campaigns.imports.addresses import normalize_address, validate_contact_email
from campaigns.models import Campaign, EmailTemplate


class PersonalizedMessageForm(forms.ModelForm):
    """Subject and bodies are sandboxed templates: a syntax error or forbidden tag shows here, never at send time.

    CR/LF in the subject is refused by the model field's validator (accounts.validators), shown on this form too.
    """

    def clean_subject(self):
        return self._checked("subject")

    def clean_body_html(self):
        # Sanitised first, then checked: what is stored is exactly what was validated.
        self.cleaned_data["body_html"] = html_hygiene.sanitize(self.cleaned_data.get("body_html") or "")
        return self._checked("body_html")

    def clean_body_text(self):
        return self._checked("body_text")

    def _checked(self, field):
        value = self.cleaned_data.get(field) or ""
        try:
            personalize.validate(value)
        except personalize.PersonalizationError as exc:
            raise forms.ValidationError(exc.messages, code=exc.code) from exc
        return value


MESSAGE_WIDGETS = {
    "subject": forms.TextInput(attrs={"class": "vTextField", "style": "width: min(100%, 48em)"}),
    "body_html": editor.body_widget(),
}
MESSAGE_LABELS = {"body_html": "Body (HTML)", "body_text": "Body (text)"}


class CampaignAdminForm(PersonalizedMessageForm):
    class Meta:
        model = Campaign
        fields = "__all__"
        widgets = MESSAGE_WIDGETS
        labels = MESSAGE_LABELS


class EmailTemplateAdminForm(PersonalizedMessageForm):
    class Meta:
        model = EmailTemplate
        fields = "__all__"
        widgets = MESSAGE_WIDGETS
        labels = MESSAGE_LABELS


class TestSendForm(forms.Form):
    MAX_ADDRESSES = 10

    addresses = forms.CharField(
        label="Send a test to",
        help_text=f"Up to {MAX_ADDRESSES} addresses, separated by commas or new lines.",
        widget=forms.Textarea(attrs={"rows": 2, "cols": 60}),
    )
    contact = forms.IntegerField(required=False, widget=forms.HiddenInput)

    def clean_addresses(self):
        raw = self.cleaned_data["addresses"].replace(";", ",").replace("\n", ",")
        addresses = []
        for item in (part.strip() for part in raw.split(",")):
            if not item:
                continue
            # The rule every contact address passes (imports, the contact form): what can be a
            # recipient can receive a test.
            item = normalize_address(item)
            try:
                validate_contact_email(item)
            except forms.ValidationError as exc:
                raise forms.ValidationError(f"“{item}”: {exc.messages[0]}") from exc
            if item not in addresses:
                addresses.append(item)
        if not addresses:
            raise forms.ValidationError("Enter at least one address.")
        if len(addresses) > self.MAX_ADDRESSES:
            raise forms.ValidationError(f"At most {self.MAX_ADDRESSES} addresses per test.")
        return addresses


class AttributeNamesField(forms.CharField):
    """A list of attribute names, typed comma-separated."""

    def prepare_value(self, value):
        return ", ".join(value) if isinstance(value, list) else value

    def to_python(self, value):
        if isinstance(value, list):
            return value
        names = []
        for name in str(value or "").split(","):
            name = name.strip()
            if name and name not in names:
                names.append(name)
        return names


class SubscriptionFormAdminForm(forms.ModelForm):
    attributes_asked = AttributeNamesField(
        label="Attributes asked", required=False,
        help_text="Contact attributes the form asks for besides email and name, comma-separated, e.g. City, Company.",
    )
