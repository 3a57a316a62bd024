"""Who a request is: the owner of the API token it bears, counted against the token's rate limit."""

from django.http import HttpRequest
from django.utils import timezone
from ninja.security import HttpBearer

from accounts.models import User
from api import limits, selectors, services
from api.models import ApiToken


class ApiRequest(HttpRequest):
    """A request TokenAuth let in: `auth` is the token's owner, whose objects alone it may see."""

    auth: User
    api_token: ApiToken


class RateLimited(Exception):
    def __init__(self, wait: int):
        super().__init__(f"Too many requests for this token. Try again in {wait} s.")
        self.wait = wait


class TokenAuth(HttpBearer):
    """`Authorization: Bearer <token>`; request.auth is the token's owner, request.api_token the token."""

    def authenticate(self, request: HttpRequest, token: str) -> User | None:
        api_token = selectors.live_token(token)
        if api_token is None:
            return None
        wait = limits.seconds_to_wait(api_token)
        if wait:
            raise RateLimited(wait)
        services.record_use(token=api_token, now=timezone.now())
        request.api_token = api_token  # type: ignore[attr-defined]
        return api_token.owner
