from typing import Any

from django import forms

from sending import dkim, esp, tracking_domains
from sending.models import BounceMailbox, SmtpAccount
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
        widgets = {
            "custom_headers": forms.Textarea(attrs={"rows": 3, "cols": 60, "placeholder": "X-Mailer-Team: news"})
        }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._checked_tracking_domain = self.instance.tracking_domain
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
        self._keep_dkim_aligned(cleaned.get("from_email"))
        return cleaned

    def _keep_dkim_aligned(self, from_email: str | None) -> None:
        account = self.instance
        if from_email and account.dkim_enabled and not dkim.aligned(account.dkim_domain, from_email):
            self.add_error(
                "from_email",
                f"This account signs with DKIM for {account.dkim_domain}: the From address must be at that domain "
                "or under it. Turn DKIM signing off, or generate a key for the new domain, first.",
            )

    def clean_tracking_domain(self) -> str:
        return tracking_domains.normalized(self.cleaned_data.get("tracking_domain") or "")

    def _tracking_domain_changed(self) -> bool:
        return "tracking_domain" in self.fields and self.instance.tracking_domain != self._checked_tracking_domain

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
        if self._tracking_domain_changed():
            # A check proved the old name only: the new one is used once it passes its own.
            tracking_domains.clear_verification(account)
        if commit:
            account.save()
            self.save_m2m()
        return account

    def _password_written(self) -> bool:
        return bool(self.cleaned_data.get("new_password") or self.cleaned_data.get("clear_password"))

    def model_fields_written(self) -> list[str]:
        """The columns this form sets (its own, the password when typed or cleared, updated_at):
        all a change saves, so a column written meanwhile by someone else (the key rotation's
        password) is never put back as the form read it. The engine's state is another row."""
        columns = {field.name for field in SmtpAccount._meta.concrete_fields if not field.primary_key}
        written = [name for name in self.fields if name in columns]
        if self._password_written():
            written.append("password")
        if self._tracking_domain_changed():
            written += tracking_domains.clear_verification(self.instance)
        return [*written, "updated_at"]


class BounceMailboxForm(forms.ModelForm):  # type: ignore[type-arg]
    """The bounce mailbox on its SMTP account's page. The password is write-only, as the account's is."""

    new_password = forms.CharField(
        label="Password",
        required=False,
        strip=False,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text="The mailbox's password.",
    )

    class Meta:
        model = BounceMailbox
        fields = ("enabled", "protocol", "host", "port", "security", "username", "new_password", "folder")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk and self.instance.has_password:
            self.fields["new_password"].help_text = "A password is stored. Leave blank to keep it."

    def clean(self) -> dict[str, Any]:
        super().clean()
        if not self.cleaned_data.get("new_password") and not self.instance.has_password:
            self.add_error("new_password", "The mailbox needs its password.")
        return self.cleaned_data

    def save(self, commit: bool = True) -> BounceMailbox:
        mailbox: BounceMailbox = super().save(commit=False)
        if self.cleaned_data.get("new_password"):
            mailbox.set_password(self.cleaned_data["new_password"])
        if commit:
            if not mailbox._state.adding:
                # Only the form's columns: a read of the mailbox writes its history meanwhile.
                mailbox.save(update_fields=self.model_fields_written())
            else:
                mailbox.save()
        return mailbox

    def model_fields_written(self) -> list[str]:
        columns = {field.name for field in BounceMailbox._meta.concrete_fields if not field.primary_key}
        written = [name for name in self.fields if name in columns]
        if self.cleaned_data.get("new_password"):
            written.append("password")
        return [*written, "updated_at"]


class DkimKeyForm(forms.Form):
    """The DKIM panel's "Generate a key": where the key is published, and its algorithm."""

    domain = forms.CharField(max_length=253, help_text="The From address's domain or a parent of it (DMARC alignment).")
    selector = forms.CharField(
        max_length=63, help_text="The name the key is published under; a new one for each new key, such as mail2026."
    )
    algorithm = forms.ChoiceField(
        choices=SmtpAccount.DkimAlgorithm.choices,
        initial=SmtpAccount.DkimAlgorithm.RSA,
        help_text="RSA is verified everywhere; Ed25519 is shorter but not yet checked by every receiver.",
    )
