from typing import Any

from django import forms

from sending import esp
from sending.models import SmtpAccount
from sending.presets import PRESET_FIELDS, PRESETS, preset_choices


# ModelForm[SmtpAccount] would fail at run time: Django's classes are generic only in django-stubs.
class SmtpAccountForm(forms.ModelForm):  # type: ignore[type-arg]
    # Write-only: the stored password is never sent back to the browser.
    new_password = forms.CharField(
        label="Password",
        required=False,
        strip=False,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text="Leave blank to keep the stored password.",
    )
    clear_password = forms.BooleanField(label="Remove the stored password", required=False)
    # Write-only too: the ESP's key for signing its webhooks (sending.esp_webhooks keeps it encrypted).
    new_esp_signing_key = forms.CharField(
        label="ESP signing key",
        required=False,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off"}),
        help_text="The key your ESP signs its webhooks with (see the steps below). Leave blank to keep the stored one.",
    )
    clear_esp_signing_key = forms.BooleanField(label="Remove the stored signing key", required=False)
    preset = forms.ChoiceField(
        label="Provider preset",
        choices=preset_choices,
        required=False,
        help_text="Fills host, port, security and limits with the provider's published numbers on save.",
    )

    class Meta:
        model = SmtpAccount
        fields = "__all__"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk and self.instance.has_password:
            self.fields["new_password"].help_text = "A password is stored. Leave blank to keep it."
        else:
            self.fields.pop("clear_password", None)

    def clean(self) -> dict[str, Any]:
        super().clean()
        cleaned = self.cleaned_data  # what ModelForm.clean returns
        preset = PRESETS.get(cleaned.get("preset") or "")
        if preset:
            for name in PRESET_FIELDS:
                if name in self.fields:
                    cleaned[name] = preset[name]
                    self.errors.pop(name, None)
        return cleaned

    def clean_new_esp_signing_key(self) -> str:
        key: str = self.cleaned_data.get("new_esp_signing_key") or ""
        problem = esp.signing_key_problem(self.cleaned_data.get("esp") or "", key) if key else None
        if problem:
            raise forms.ValidationError(problem)
        return key

    def signing_key_change(self) -> str | None:
        """The ESP signing key to store ("" removes the stored one), or None to keep it."""
        if self.cleaned_data.get("new_esp_signing_key"):
            return str(self.cleaned_data["new_esp_signing_key"])
        return "" if self.cleaned_data.get("clear_esp_signing_key") else None

    def save(self, commit: bool = True) -> SmtpAccount:
        account: SmtpAccount = super().save(commit=False)
        if self._password_written():
            account.set_password(self.cleaned_data.get("new_password") or "")
        if commit:
            account.save()
            self.save_m2m()
        return account

    def _password_written(self) -> bool:
        return bool(self.cleaned_data.get("new_password") or self.cleaned_data.get("clear_password"))

    def model_fields_written(self) -> list[str]:
        """The columns this form sets (its own, the password when typed or cleared, updated_at):
        all a change saves, so the sending engine's fields (the pacing clock, the learned rate,
        pauses, backoff), written meanwhile by workers, are never put back as the form read them."""
        columns = {field.name for field in SmtpAccount._meta.concrete_fields if not field.primary_key}
        written = [name for name in self.fields if name in columns]
        if self._password_written():
            written.append("password")
        return [*written, "updated_at"]
