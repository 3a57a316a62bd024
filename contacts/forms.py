from django import forms


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
        label="Attributes asked",
        required=False,
        help_text="Contact attributes the form asks for besides email and name, comma-separated, e.g. City, Company.",
    )
