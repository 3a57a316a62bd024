"""The site's host check, widened for tracking domains (sending.tracking_domains), before anything reads it.

A request whose host is this site's (ALLOWED_HOSTS) passes untouched. One whose host is an account's
verified tracking domain is served only for the tracking URLs (the open pixel, a click, the
unsubscribe page and its one-click POST, the domain check) and answers 404 on every other path, so a
marketer's CNAME never serves the admin's login, a sign-up or a webhook. The check URL is served on
the very name its signed token was made for, before that name is verified. Any other host reaches
Django's own check, which answers 400 as it always did.

A request served on a tracking domain carries `tracking_account_id`, the account whose domain it is:
the tracking views follow only that account's tokens there (None: the site's host, every account's).
"""

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseNotFound
from django.http.request import split_domain_port, validate_host
from django.urls import Resolver404, resolve

from sending import selectors, tracking_domains

# The tracking URLs (tracking/urls.py) a tracking domain serves.
TRACKING_VIEWS = frozenset({"open", "click", "unsubscribe", "domain_check"})


class TrackingDomainMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        request.tracking_account_id = None  # type: ignore[attr-defined]
        raw_host = _raw_host(request)
        domain, _port = split_domain_port(raw_host)
        if not domain or validate_host(domain, _allowed_hosts()):
            return self.get_response(request)
        view = _tracking_view(request)
        if view == "domain_check" and _check_token_names(request, domain):
            return self._served_on(request, raw_host, account_id=None)
        account_id = selectors.verified_tracking_domains().get(domain)
        if account_id is None:
            return self.get_response(request)  # Django's own check: 400
        if view is None:
            return HttpResponseNotFound("Not found.", content_type="text/plain")
        return self._served_on(request, raw_host, account_id=account_id)

    def _served_on(self, request: HttpRequest, raw_host: str, *, account_id: int | None) -> HttpResponse:
        request.tracking_account_id = account_id  # type: ignore[attr-defined]
        # This request's host is accepted as it is: for this request alone, ALLOWED_HOSTS untouched.
        request.get_host = lambda: raw_host  # type: ignore[method-assign]
        return self.get_response(request)


def _raw_host(request: HttpRequest) -> str:
    """The host get_host() validates, before its check; "" without a Host header (Django then judges
    SERVER_NAME itself)."""
    meta = request.META
    if settings.USE_X_FORWARDED_HOST and "HTTP_X_FORWARDED_HOST" in meta:
        return str(meta["HTTP_X_FORWARDED_HOST"])
    return str(meta.get("HTTP_HOST", ""))


def _allowed_hosts() -> list[str]:
    # As HttpRequest.get_host reads them (DEBUG with none set serves localhost).
    allowed = list(settings.ALLOWED_HOSTS)
    if settings.DEBUG and not allowed:
        return [".localhost", "127.0.0.1", "[::1]"]
    return allowed


def _tracking_view(request: HttpRequest) -> str | None:
    try:
        match = resolve(request.path_info)
    except Resolver404:
        return None
    if match.namespace == "tracking" and match.url_name in TRACKING_VIEWS:
        return str(match.url_name)
    return None


def _check_token_names(request: HttpRequest, domain: str) -> bool:
    token = resolve(request.path_info).kwargs.get("token", "")
    read = tracking_domains.read_check_token(token)
    return read is not None and read[1] == domain
