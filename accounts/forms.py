from django import forms
from django.conf import settings
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth import password_validation
from django.core.exceptions import ValidationError

from accounts.backends import LOGIN_DENIED_REASON
from accounts.models import TIMEZONE_CHOICES, SmtpAccount, User
from sending.presets import PRESET_FIELDS, PRESETS, preset_choices


class SmtpAccountForm(forms.ModelForm):
    # Write-only: the stored password is never sent back to the browser.
    new_password = forms.CharField(
        label="Password",
        required=False,
        strip=False,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text="Leave blank to keep the stored password.",
    )
    clear_password = forms.BooleanField(label="Remove the stored password", required=False)
    preset = forms.ChoiceField(
        label="Provider preset",
        choices=preset_choices,
        required=False,
        help_text="Fills host, port, security and limits with the provider's published numbers on save.",
    )

    class Meta:
        model = SmtpAccount
        fields = "__all__"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance.pk and self.instance.has_password:
            self.fields["new_password"].help_text = "A password is stored. Leave blank to keep it."
        else:
            self.fields.pop("clear_password", None)

    def clean(self):
        cleaned = super().clean()
        preset = PRESETS.get(cleaned.get("preset") or "")
        if preset:
            for name in PRESET_FIELDS:
                if name in self.fields:
                    cleaned[name] = preset[name]
                    self.errors.pop(name, None)
        return cleaned

    def save(self, commit=True):
        account = super().save(commit=False)
        if self._password_written():
            account.set_password(self.cleaned_data.get("new_password") or "")
        if commit:
            account.save()
            self.save_m2m()
        return account

    def _password_written(self):
        return bool(self.cleaned_data.get("new_password") or self.cleaned_data.get("clear_password"))

    def model_fields_written(self):
        """The columns this form sets (its own, the password when typed or cleared, updated_at):
        all a change saves, so the sending engine's fields (the pacing clock, the learned rate,
        pauses, backoff), written meanwhile by workers, are never put back as the form read them."""
        columns = {field.name for field in SmtpAccount._meta.concrete_fields if not field.primary_key}
        written = [name for name in self.fields if name in columns]
        if self._password_written():
            written.append("password")
        return [*written, "updated_at"]


class AccessAwareLoginForm(AdminAuthenticationForm):
    """The admin login form, telling a person with the right password why they cannot enter yet.

    The backend found that out while checking the password (accounts.backends): the form must not
    check it again, or a real username would cost two password hashes and an unknown one one.
    """

    def clean(self):
        try:
            return super().clean()
        except ValidationError:
            reason = getattr(self.request, LOGIN_DENIED_REASON, "")
            if reason:
                raise ValidationError(reason, code="inactive") from None
            raise


class SignupForm(forms.Form):
    username = forms.RegexField(
        regex=r"^[\w.@+-]+\Z",
        max_length=150,
        help_text="Letters, digits and @/./+/-/_ only.",
        error_messages={"invalid": "Use only letters, digits and @/./+/-/_."},
    )
    email = forms.EmailField()
    organization = forms.CharField(max_length=200, required=False, help_text="Shown in your emails' footer.")
    timezone = forms.ChoiceField(choices=TIMEZONE_CHOICES, initial=settings.DEFAULT_USER_TIMEZONE)
    password1 = forms.CharField(label="Password", strip=False, widget=forms.PasswordInput)
    password2 = forms.CharField(label="Password again", strip=False, widget=forms.PasswordInput)

    # Whether the username or the address is taken is not checked here: the page would tell anyone
    # which exist. services.sign_up tells the address's owner by email instead.

    def clean_email(self):
        return self.cleaned_data["email"].strip()

    def clean_organization(self):
        value = self.cleaned_data["organization"]
        if "\r" in value or "\n" in value:
            raise ValidationError("Line breaks are not allowed here.")
        return value

    def clean(self):
        cleaned = super().clean()
        p1, p2 = cleaned.get("password1"), cleaned.get("password2")
        if p1 and p2 and p1 != p2:
            self.add_error("password2", "The two passwords differ.")
        elif p1:
            candidate = User(username=cleaned.get("username", ""), email=cleaned.get("email", ""))
            try:
                password_validation.validate_password(p1, candidate)
            except ValidationError as exc:
                self.add_error("password1", exc)
        return cleaned


class ProfileForm(forms.ModelForm):
    """What a marketer edits about themselves: never their permissions."""

    class Meta:
        model = User
        fields = ["first_name", "last_name", "email", "timezone", "organization", "postal_address"]

    def clean_email(self):
        # The model does not make addresses unique; sign-up does, and so must the profile,
        # or one account could take another's address (password reset and mail go by it).
        email = self.cleaned_data["email"].strip()
        if email and User.objects.filter(email__iexact=email).exclude(pk=self.instance.pk).exists():
            raise ValidationError("Another account uses this address.")
        return email
