from dataclasses import dataclass

from django.conf import settings
from django.urls import reverse
from django.utils.functional import SimpleLazyObject

from accounts import selectors


def signup(request):
    return {"signup_enabled": settings.SIGNUP_ENABLED}


@dataclass(frozen=True)
class Notice:
    """A standing banner on every admin page (templates/admin/base_site.html) until its cause is gone."""

    level: str  # "warning" or "info": the admin's message classes
    text: str
    link_text: str = ""
    url: str = ""


def notices(request):
    # Lazy: the queries run only on the pages that draw the banners (the admin's), not on public ones.
    return {"standing_notices": SimpleLazyObject(lambda: notices_for(user=request.user))}


def notices_for(*, user):
    if not (user.is_authenticated and user.is_active and user.is_staff):
        return []
    if user.is_superuser:
        return _administrator_notices(user=user)
    return _marketer_notices(user=user)


def _marketer_notices(*, user):
    if user.postal_address.strip():
        return []
    profile_field = reverse("accounts:profile") + "#id_postal_address"
    if settings.DEFAULT_POSTAL_ADDRESS:
        return [
            Notice(
                "info",
                f"Your emails' footer shows this site's default postal address ({settings.DEFAULT_POSTAL_ADDRESS}) "
                "until you set your own.",
                "Set your postal address",
                profile_field,
            )
        ]
    return [
        Notice(
            "warning",
            "Your profile has no postal address, and every campaign email's footer needs one: anti-spam laws "
            "(CAN-SPAM in the US, and others) require a valid postal address in each marketing email.",
            "Add your postal address",
            profile_field,
        )
    ]


def _administrator_notices(*, user):
    found = []
    waiting = selectors.sign_ups_awaiting_approval_count()
    if waiting:
        text = (
            "A new account (signed up, address confirmed) waits for your approval."
            if waiting == 1
            else f"{waiting} new accounts (signed up, addresses confirmed) wait for your approval."
        )
        found.append(Notice("warning", text, "Review", reverse("admin:accounts_user_changelist") + "?approval=waiting"))
    if settings.SIGNUP_ENABLED and not selectors.approver_emails():
        found.append(
            Notice(
                "warning",
                "No superuser has an email address, so nobody is told when someone signs up and waits for approval.",
                "Add yours",
                reverse("admin:accounts_user_change", args=[user.pk]) + "#id_email",
            )
        )
    return found
