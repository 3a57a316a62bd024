"""Reads for accounts: who approves sign-ups, and who waits for it."""

from accounts.models import User


def approver_emails() -> list[str]:
    """The addresses a confirmed sign-up's approval request goes to: active superusers with one."""
    return list(
        User.objects.filter(is_superuser=True, is_active=True).exclude(email="").values_list("email", flat=True)
    )


def has_approver() -> bool:
    return User.objects.filter(is_superuser=True, is_active=True).exists()


def sign_ups_awaiting_approval_count() -> int:
    """Confirmed sign-ups no superuser approved yet (the User admin's "Waiting for approval" filter)."""
    return User.objects.filter(
        is_active=True, is_superuser=False, approved_at__isnull=True, email_confirmed_at__isnull=False
    ).count()
