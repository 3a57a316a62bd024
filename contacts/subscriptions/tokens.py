"""Signed tokens of the subscription forms, one salt per purpose (a token of one never passes as another).

- page: the hosted page's URL, /s/<token>/ (the form's id; no expiry, it is printed on websites);
- post: the hidden field every submission carries, hosted or embedded (CSRF-exempt POSTs need it);
- confirm: the link in the confirmation email (the request's id and address, expiring).
"""

from django.conf import settings
from django.core import signing
from django.utils.crypto import salted_hmac

PAGE_SALT = "contacts.subscriptions.page"
POST_SALT = "contacts.subscriptions.post"
CONFIRM_SALT = "contacts.subscriptions.confirm"
IP_SALT = "contacts.subscriptions.ip"


class ConfirmationExpired(Exception):
    pass


class ConfirmationInvalid(Exception):
    pass


def _form_id(token: str, salt: str) -> int | None:
    try:
        value = signing.Signer(salt=salt, algorithm="sha256").unsign(token or "")
    except signing.BadSignature:
        return None
    return int(value) if value.isdigit() else None


def page_token(*, form_id: int) -> str:
    return signing.Signer(salt=PAGE_SALT, algorithm="sha256").sign(str(form_id))


def read_page_token(token: str) -> int | None:
    return _form_id(token, PAGE_SALT)


def post_token(*, form_id: int) -> str:
    return signing.Signer(salt=POST_SALT, algorithm="sha256").sign(str(form_id))


def read_post_token(token: str) -> int | None:
    return _form_id(token, POST_SALT)


def confirm_token(*, request_id: int, email: str) -> str:
    # The address is signed in, so a link only ever confirms the address it was mailed to.
    return signing.dumps({"r": request_id, "e": email}, salt=CONFIRM_SALT)


def read_confirm_token(token: str) -> tuple[int, str]:
    """(request id, address); raises ConfirmationExpired or ConfirmationInvalid."""
    try:
        data = signing.loads(token, salt=CONFIRM_SALT, max_age=settings.SUBSCRIPTION_CONFIRM_MAX_AGE)
    except signing.SignatureExpired as exc:
        raise ConfirmationExpired from exc
    except signing.BadSignature as exc:
        raise ConfirmationInvalid from exc
    if not isinstance(data, dict) or not isinstance(data.get("r"), int) or not isinstance(data.get("e"), str):
        raise ConfirmationInvalid
    return data["r"], data["e"]


def hash_ip(ip: str) -> str:
    """A keyed hash of the address: equal IPs compare equal, the IP itself is never stored."""
    return salted_hmac(IP_SALT, ip or "", algorithm="sha256").hexdigest() if ip else ""
