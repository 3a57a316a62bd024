"""Admin forms of campaigns and templates: the editor widget, sanitised HTML, templates checked on save."""

from django import forms
from django.contrib.admin.widgets import RelatedFieldWidgetWrapper

from campaigns import editor, html_hygiene, personalize
from campaigns.models import Campaign, CampaignTestSend, EmailTemplate, SegmentCondition
from contacts.addresses import normalize_address, validate_contact_email


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
HEADERS_WIDGET = forms.Textarea(attrs={"rows": 3, "cols": 60, "placeholder": "X-Campaign-Code: spring-26"})
MESSAGE_LABELS = {"body_html": "Body (HTML)", "body_text": "Body (text)"}


class CampaignAdminForm(PersonalizedMessageForm):
    class Meta:
        model = Campaign
        fields = "__all__"
        widgets = {**MESSAGE_WIDGETS, "custom_headers": HEADERS_WIDGET}
        labels = MESSAGE_LABELS


class EmailTemplateAdminForm(PersonalizedMessageForm):
    class Meta:
        model = EmailTemplate
        fields = "__all__"
        widgets = MESSAGE_WIDGETS
        labels = MESSAGE_LABELS


class TestSendForm(forms.Form):
    MAX_ADDRESSES = CampaignTestSend.MAX_ADDRESSES

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


class SegmentConditionForm(forms.ModelForm):
    """One condition row of a segment's inline: what the live count and the form's script read too."""

    class Meta:
        model = SegmentCondition
        fields = ("field", "attribute", "operator", "value", "contact_status", "contact_list", "campaign")
        labels = {"field": "Contacts whose", "operator": "", "value": "Compared with"}
        widgets = {
            "attribute": forms.TextInput(attrs={"size": 14, "placeholder": "attribute, e.g. City"}),
            "value": forms.TextInput(attrs={"size": 18}),
        }

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for name in ("contact_list", "campaign"):
            # Plain selects: the admin's add/change icons beside them would open other models' pages in a popup.
            widget = self.fields[name].widget
            if isinstance(widget, RelatedFieldWidgetWrapper):
                self.fields[name].widget = widget.widget

    def _update_errors(self, errors):
        # A choice refused by the field ("Select a valid choice") is not also "Choose the list." from the model.
        if hasattr(errors, "error_dict"):
            errors.error_dict = {k: v for k, v in errors.error_dict.items() if k not in self._errors}
            if not errors.error_dict:
                return
        super()._update_errors(errors)


def segment_form_rules():
    """For static/js/segment_form.js: which operators suit each field, and what each compares with."""
    C = SegmentCondition
    compares_with = {C.Field.STATUS: "contact_status", C.Field.LIST: "contact_list", C.Field.CAMPAIGN: "campaign"}
    return {
        "operators": {field: list(operators) for field, operators in C.OPERATORS.items()},
        "compares_with": compares_with,
        "without_value": [C.Operator.IS_EMPTY, C.Operator.IS_NOT_EMPTY],
        "placeholders": {
            **{op: "a number, e.g. 40" for op in C.NUMBER_OPERATORS},
            **{op: "a date: 2026-12-31" for op in C.DATE_OPERATORS},
            **{op: "days, e.g. 30" for op in C.DAYS_OPERATORS},
            **{op: "text" for op in C.TEXT_OPERATORS},
        },
    }
