import json

from django import forms
from django.utils.html import format_html, format_html_join


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


# Rows left blank under a contact's attributes, to add new ones without a script.
BLANK_ATTRIBUTE_ROWS = 3
MAX_ATTRIBUTE_NAME = 100  # as an import names a column (contacts.imports.columns.MAX_ATTRIBUTE_KEY)
RESERVED_ATTRIBUTE_NAMES = ("email", "name")  # the contact's own fields


class AttributeRowsWidget(forms.Widget):
    """A contact's attributes as rows of name and value inputs (NAME_key, NAME_value, repeated), with a few
    blank rows to add one; clearing a row's name and value removes it."""

    def value_from_datadict(self, data, files, name):
        keys, values = data.getlist(f"{name}_key"), data.getlist(f"{name}_value")
        return list(zip(keys, values, strict=False))

    def value_omitted_from_data(self, data, files, name):
        return f"{name}_key" not in data

    def render(self, name, value, attrs=None, renderer=None):
        rows = rows_of(value) + [("", "")] * BLANK_ATTRIBUTE_ROWS
        body = format_html_join(
            "",
            '<tr><td><input type="text" name="{}_key" value="{}" maxlength="{}" aria-label="Attribute name"></td>'
            '<td><input type="text" name="{}_value" value="{}" aria-label="Value" class="vTextField"></td></tr>',
            ((name, key, MAX_ATTRIBUTE_NAME, name, text) for key, text in rows),
        )
        return format_html(
            '<table class="attribute-rows" id="{}"><thead><tr><th>Name</th><th>Value</th></tr></thead>'
            "<tbody>{}</tbody></table>",
            (attrs or {}).get("id", f"id_{name}"),
            body,
        )


def rows_of(value) -> list[tuple[str, str]]:
    """(name, value) rows from the stored dict, or the rows as submitted (a form shown again with errors)."""
    if isinstance(value, dict):
        return [(str(key), attribute_text(text)) for key, text in value.items()]
    if isinstance(value, list):
        return [(str(key), str(text)) for key, text in value if str(key).strip() or str(text).strip()]
    return []


def attribute_text(value) -> str:
    """An attribute's value as its input shows it: text as it is, anything else (a number from an API) as JSON."""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


class AttributeRowsField(forms.Field):
    """Contact attributes entered as rows, stored as the JSON object the model keeps (name -> text).

    A value shown unchanged keeps its stored type (so a number stays a number); every other value is text,
    as imports store them."""

    widget = AttributeRowsWidget

    def to_python(self, value):
        rows = value if isinstance(value, list) else [(k, attribute_text(v)) for k, v in (value or {}).items()]
        attributes, errors, seen = {}, [], {}
        for number, (key, text) in enumerate(rows, start=1):
            key, text = str(key).strip(), str(text)
            if not key:
                if text.strip():
                    errors.append(f"Row {number}: give the value “{text.strip()}” a name, or clear it.")
                continue
            if len(key) > MAX_ATTRIBUTE_NAME:
                errors.append(f"Row {number}: “{key[:20]}…” is longer than {MAX_ATTRIBUTE_NAME} characters.")
            elif key.casefold() in RESERVED_ATTRIBUTE_NAMES:
                errors.append(f"Row {number}: “{key}” is the contact's own field; edit it above.")
            elif key.casefold() in seen:
                errors.append(f"Row {number}: “{key}” is named twice (row {seen[key.casefold()]} too).")
            else:
                seen[key.casefold()] = number
                attributes[key] = text
        if errors:
            raise forms.ValidationError(errors)
        return attributes

    def has_changed(self, initial, data):
        return (initial or {}) != self.to_python(data)


class ContactAdminForm(forms.ModelForm):
    attributes = AttributeRowsField(
        label="Attributes",
        required=False,
        help_text="Extra fields, usable in messages as {{ name }}. Clear a row's name and value to remove it; "
        "save to get more blank rows.",
    )

    def clean_attributes(self):
        """Values shown and sent back unchanged keep their stored type."""
        stored = self.instance.attributes or {}
        return {
            key: stored[key] if key in stored and attribute_text(stored[key]) == text else text
            for key, text in self.cleaned_data["attributes"].items()
        }
