"""Writes for accounts: marketers, sign-up, approval."""

import logging
from collections.abc import Iterable
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth import password_validation
from django.contrib.auth.hashers import make_password
from django.contrib.auth.models import Group
from django.core import signing
from django.core.exceptions import ValidationError
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

from accounts import rate_limits, selectors
from accounts.models import MARKETERS_GROUP, User

log = logging.getLogger(__name__)

CONFIRM_SALT = "accounts.confirm-email"


class ConfirmationError(Exception):
    pass


class UsernameTaken(Exception):
    pass


def marketers_group() -> Group:
    # The migration creates it with its permissions; get_or_create only guards a hand-made database.
    group, _ = Group.objects.get_or_create(name=MARKETERS_GROUP)
    return group


def make_marketer(*, user: User) -> None:
    user.is_staff = True
    user.save(update_fields=["is_staff"])
    user.groups.add(marketers_group())


@transaction.atomic
def create_marketer(
    *, username: str, email: str, password: str, organization: str = "", timezone_name: str | None = None
) -> User:
    """An approved, confirmed marketer who can log in at once (staff command and demo)."""
    now = timezone.now()
    user = User(
        username=username,
        email=email,
        organization=organization,
        timezone=timezone_name or settings.DEFAULT_USER_TIMEZONE,
        email_confirmed_at=now,
        approved_at=now,
    )
    user.full_clean(exclude=["password"])
    # The same validators as sign-up, told about the user so a password like the username is refused.
    try:
        password_validation.validate_password(password, user)
    except ValidationError as exc:
        raise ValidationError({"password": exc.messages}) from exc
    user.set_password(password)
    user.save()
    make_marketer(user=user)
    return user


def sign_up(
    *,
    username: str,
    email: str,
    password: str,
    organization: str = "",
    timezone_name: str | None = None,
    client_key: str,
    now: datetime,
) -> None:
    """A sign-up from the public form. Whatever is taken, the person is told the same ("check your
    inbox") and the address typed gets one email:

    - username and address free: the new account, and its confirmation link;
    - an account has the address already: a note to its owner, nothing created;
    - the username is taken: a note asking for another one, nothing created.

    So the page tells nobody which usernames or addresses exist; only the address's owner learns it.
    Sign-ups whose confirmation link expired unused are removed first, freeing their usernames and
    addresses. Raises RateLimited (per client, per address) before anything is done.
    """
    rate_limits.count_sign_up(client_key=client_key, email=email)
    remove_expired_sign_ups(now=now)
    # Hashed whatever the outcome, so the reply's time does not tell the outcomes apart either.
    encoded_password = make_password(password)
    owner = User.objects.filter(email__iexact=email).order_by("pk").first()
    if owner is not None:
        transaction.on_commit(lambda: send_address_taken(user=owner))
        return
    try:
        with transaction.atomic():
            if User.objects.filter(username__iexact=username).exists():
                raise UsernameTaken
            user = register(
                username=username,
                email=email,
                encoded_password=encoded_password,
                organization=organization,
                timezone_name=timezone_name,
            )
    except (UsernameTaken, IntegrityError):  # IntegrityError: the same username signed up at the same moment
        transaction.on_commit(lambda: send_username_taken(email=email, username=username))
        return
    transaction.on_commit(lambda: send_confirmation(user=user))


def register(
    *,
    username: str,
    email: str,
    encoded_password: str,
    organization: str = "",
    timezone_name: str | None = None,
) -> User:
    """Self-service sign-up's account: it exists but cannot log in until confirmed and approved."""
    user = User(
        username=username,
        email=email,
        password=encoded_password,
        organization=organization,
        timezone=timezone_name or settings.DEFAULT_USER_TIMEZONE,
        is_staff=True,
    )
    user.save()
    user.groups.add(marketers_group())
    return user


def remove_expired_sign_ups(*, now: datetime) -> int:
    """Delete the sign-ups whose confirmation link expired unused, freeing their usernames and
    addresses; returns how many. Only accounts nobody ever vouched for go: never confirmed, never
    approved, never logged in, not superusers (such an account cannot log in, and never could)."""
    _, deleted = User.objects.filter(
        email_confirmed_at__isnull=True,
        approved_at__isnull=True,
        last_login__isnull=True,
        is_superuser=False,
        date_joined__lt=now - timedelta(seconds=settings.SIGNUP_CONFIRM_MAX_AGE),
    ).delete()
    removed = deleted.get(User._meta.label, 0)
    if removed:
        log.info("removed %d sign-up(s) left unconfirmed past SIGNUP_CONFIRM_MAX_AGE", removed)
    return removed


def confirmation_token(*, user: User) -> str:
    # The address is signed in, so changing it invalidates links sent to the old one.
    return signing.dumps({"u": user.pk, "e": user.email}, salt=CONFIRM_SALT)


def confirmation_url(*, user: User) -> str:
    return settings.SITE_URL + reverse("accounts:confirm", args=[confirmation_token(user=user)])


def send_confirmation(*, user: User) -> None:
    """System mail through Django's EMAIL_* settings, never a marketer's SMTP account."""
    body = render_to_string(
        "accounts/email/confirm.txt",
        {"user": user, "url": confirmation_url(user=user), "hours": settings.SIGNUP_CONFIRM_MAX_AGE // 3600},
    )
    send_mail("Confirm your email address", body, None, [user.email])


def send_address_taken(*, user: User) -> None:
    """Someone signed up with the address of an existing account: tell its owner, and how to get in."""
    body = render_to_string(
        "accounts/email/signup_address_taken.txt",
        {
            "user": user,
            "login_url": settings.SITE_URL + reverse("admin:login"),
            "reset_url": settings.SITE_URL + reverse("admin_password_reset"),
            "confirm_until": user.date_joined + timedelta(seconds=settings.SIGNUP_CONFIRM_MAX_AGE),
        },
    )
    send_mail("You already have an account", body, None, [user.email])


def send_username_taken(*, email: str, username: str) -> None:
    body = render_to_string(
        "accounts/email/signup_username_taken.txt",
        {"username": username, "signup_url": settings.SITE_URL + reverse("accounts:signup")},
    )
    send_mail("Choose another username", body, None, [email])


def confirmation_user(*, token: str) -> User:
    """The user a confirmation link names, read without changing anything (the link's page, on GET);
    raises ConfirmationError for a link altered, expired, or for an address changed since."""
    try:
        data = signing.loads(token, salt=CONFIRM_SALT, max_age=settings.SIGNUP_CONFIRM_MAX_AGE)
    except signing.SignatureExpired as exc:
        raise ConfirmationError("This confirmation link has expired. Sign up again or ask an administrator.") from exc
    except signing.BadSignature as exc:
        raise ConfirmationError("This confirmation link is not valid.") from exc
    user = User.objects.filter(pk=data.get("u"), email=data.get("e")).first()
    if user is None:
        raise ConfirmationError("This confirmation link is not valid.")
    return user


def confirm_email(*, token: str) -> User:
    """Confirm the address a link names (its page's POST: a link scanner's GET confirms nothing)."""
    user = confirmation_user(token=token)
    if user.email_confirmed_at is None:
        user.email_confirmed_at = timezone.now()
        user.save(update_fields=["email_confirmed_at"])
        _notify_superusers_of_pending(user=user)
    return user


def _notify_superusers_of_pending(*, user: User) -> None:
    """Mail every superuser with an address that `user` waits for approval; with none to mail, say so in
    the log (the confirmation page tells the person, and a superuser's pages show who waits)."""
    admins = selectors.approver_emails()
    if not admins:
        log.warning(
            "sign-up %s confirmed its address and waits for approval, but no active superuser has an email "
            "address to be told: create one (manage.py create_admin --email E, or make superuser) and approve "
            "it in the User admin",
            user.username,
        )
        return
    url = settings.SITE_URL + reverse("admin:accounts_user_change", args=[user.pk])
    try:
        send_mail(
            f"New account waiting for approval: {user.username}",
            f"{user.username} <{user.email}> confirmed their address and waits for approval:\n{url}\n",
            None,
            admins,
        )
    except OSError:
        # The confirmation itself stands; the superusers' dashboards still list who waits.
        log.exception("could not mail the superusers that sign-up %s waits for approval", user.username)


@transaction.atomic
def create_superuser(*, username: str, email: str, password: str) -> User:
    """A superuser who approves sign-ups and sees everything; its address receives the approval requests."""
    now = timezone.now()
    user = User(
        username=username,
        email=email,
        is_staff=True,
        is_superuser=True,
        email_confirmed_at=now,
        approved_at=now,
        timezone=settings.DEFAULT_USER_TIMEZONE,
    )
    user.full_clean(exclude=["password"])
    try:
        password_validation.validate_password(password, user)
    except ValidationError as exc:
        raise ValidationError({"password": exc.messages}) from exc
    user.set_password(password)
    user.save()
    return user


def approve(*, users: Iterable[User]) -> int:
    """Approve accounts (an admin action); returns how many were newly approved."""
    now = timezone.now()
    approved = 0
    for user in users:
        if user.approved_at is not None:
            continue
        user.approved_at = now
        user.save(update_fields=["approved_at"])
        make_marketer(user=user)
        approved += 1
        if user.email:
            send_mail(
                "Your account is approved",
                render_to_string("accounts/email/approved.txt", {"user": user, "url": settings.SITE_URL + "/admin/"}),
                None,
                [user.email],
                fail_silently=True,
            )
    return approved
