from django import forms
from django.conf import settings
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth import password_validation
from django.core.exceptions import ValidationError

from accounts.backends import LOGIN_DENIED_REASON
from accounts.models import TIMEZONE_CHOICES, User


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
        help_texts = {
            "postal_address": (
                "Printed in the footer of every campaign email. Anti-spam laws (CAN-SPAM in the US, and others) "
                "require a valid postal address in each marketing email: a street address, a post office box "
                "or a registered private mailbox."
            ),
        }
        widgets = {
            "postal_address": forms.Textarea(
                attrs={"rows": 3, "placeholder": "Street and number, city, postal code, country"}
            ),
        }

    def clean_postal_address(self):
        return self.cleaned_data["postal_address"].strip()

    def clean_email(self):
        # The model does not make addresses unique; sign-up does, and so must the profile,
        # or one account could take another's address (password reset and mail go by it).
        email = self.cleaned_data["email"].strip()
        if email and User.objects.filter(email__iexact=email).exclude(pk=self.instance.pk).exists():
            raise ValidationError("Another account uses this address.")
        return email
