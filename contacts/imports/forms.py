"""The upload form of the admin's contact import."""

from django import forms
from django.conf import settings

from contacts.imports.jobs import ImportRefused, check_upload_size
from contacts.imports.reader import CSV_EXTENSIONS, ENCODING_CHOICES, XLSX_EXTENSIONS
from contacts.models import ContactList


class ImportUploadForm(forms.Form):
    file = forms.FileField(
        help_text="CSV (comma, semicolon or tab separated) or Excel .xlsx (first sheet). "
        "One column must hold the addresses (Email, E-mail, Email Address…); Name or First Name + Last Name "
        "become the name; every other column becomes an attribute you can use in templates under its header."
    )
    contact_list = forms.ModelChoiceField(
        queryset=ContactList.objects.none(),
        required=False,
        label="Into the list",
        empty_label="— a new list, named below —",
    )
    new_list_name = forms.CharField(max_length=200, required=False, label="New list name")
    encoding = forms.ChoiceField(
        choices=ENCODING_CHOICES,
        required=False,
        label="Encoding (CSV)",
        help_text="Detected from the file unless you choose one.",
    )

    def __init__(self, *args, owner, **kwargs):
        super().__init__(*args, **kwargs)

        self.owner = owner
        # Only the importing user's own lists, superusers included: imported contacts are theirs.
        self.fields["contact_list"].queryset = ContactList.objects.filter(owner=owner).order_by("name")
        limit_mb = settings.IMPORT_MAX_UPLOAD_BYTES / (1024 * 1024)
        self.fields["file"].help_text += f" At most {limit_mb:.0f} MB."
        self.fields["file"].widget.attrs["accept"] = ",".join(sorted(CSV_EXTENSIONS | XLSX_EXTENSIONS))

    def clean_file(self):
        upload = self.cleaned_data["file"]
        try:
            check_upload_size(size=upload.size)
        except ImportRefused as exc:
            raise forms.ValidationError(str(exc)) from None
        return upload

    def clean(self):
        cleaned = super().clean()
        contact_list = cleaned.get("contact_list")
        name = (cleaned.get("new_list_name") or "").strip()
        if contact_list is None and not name:
            self.add_error("contact_list", "Pick one of your lists, or name a new one below.")
        elif contact_list is not None and name:
            self.add_error("new_list_name", "Either pick a list or name a new one, not both.")
        elif contact_list is None and self.fields["contact_list"].queryset.filter(name=name).exists():
            # Naming an existing list is picking it.
            cleaned["contact_list"] = self.fields["contact_list"].queryset.get(name=name)
            cleaned["new_list_name"] = ""
        else:
            cleaned["new_list_name"] = name
        return cleaned
