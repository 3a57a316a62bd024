"""Public tracking endpoints: the open pixel, click redirects and unsubscribe pages.

Each view reads its signed token and calls one service. Nothing here stores an IP address.
"""

import base64
import logging
from datetime import timedelta

from django.conf import settings
from django.db import DatabaseError
from django.http import HttpRequest, HttpResponse, HttpResponseNotFound, HttpResponseRedirect
from django.http.request import split_domain_port
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from sending import selectors as sending_selectors
from sending import tracking_domains
from tracking import selectors, services, tokens

log = logging.getLogger(__name__)

# A transparent 1x1 GIF89a, 43 bytes.
PIXEL_GIF = base64.b64decode("R0lGODlhAQABAIAAAP///wAAACH5BAEAAAAALAAAAAABAAEAAAICRAEAOw==")
PREVIEW_TOKEN = "preview"


def _private(response):
    response["Cache-Control"] = "no-store, no-cache, must-revalidate, private, max-age=0"
    response["Pragma"] = "no-cache"
    response["Expires"] = "0"
    response["Referrer-Policy"] = "no-referrer"
    response["X-Robots-Tag"] = "noindex, nofollow"
    return response


def _account_served(request):
    """The account whose tracking domain this request came on (config.hosts), whose emails alone
    it may follow; None on the site's own host."""
    return getattr(request, "tracking_account_id", None)


def open_pixel(request, token):
    """Always the GIF, whatever the token: a forged or stale one learns nothing. Only a GET is an open."""
    email_id = tokens.read_open(token)
    if email_id is not None and request.method == "GET":
        try:
            services.record_open(
                email_id=email_id,
                user_agent=request.META.get("HTTP_USER_AGENT", ""),
                now=timezone.now(),
                account_id=_account_served(request),
            )
        except DatabaseError:
            log.exception("open of email %s not recorded", email_id)
    response = HttpResponse(PIXEL_GIF, content_type="image/gif")
    response["Content-Length"] = str(len(PIXEL_GIF))
    return _private(response)


@require_http_methods(["GET", "HEAD"])
def click(request, token):
    """Redirect to the stored Link of this email's campaign, and nowhere else. Only a GET is a
    click: a HEAD (a link checker, a preview) gets the same answer and records nothing."""
    ids = tokens.read_click(token)
    url = None
    if ids is not None:
        email_id, link_id = ids
        if request.method == "GET":
            url = services.record_click(
                email_id=email_id,
                link_id=link_id,
                user_agent=request.META.get("HTTP_USER_AGENT", ""),
                now=timezone.now(),
                account_id=_account_served(request),
            )
        else:
            url = selectors.click_target(email_id=email_id, link_id=link_id, account_id=_account_served(request))
    if url is None:
        return _private(render(request, "tracking/invalid.html", status=404))
    return _private(HttpResponseRedirect(url))


# The RFC 8058 one-click POST comes from a mail provider with no cookie and no CSRF token; the signed
# token in the URL is the authorisation, so CSRF protection would only refuse legitimate requests.
@csrf_exempt
@require_http_methods(["GET", "HEAD", "POST"])
def unsubscribe(request, token):
    """GET shows one button and changes nothing (scanners fetch GETs); POST unsubscribes, idempotently."""
    if token == PREVIEW_TOKEN:
        return _private(render(request, "tracking/unsubscribe_preview.html"))
    email_id = tokens.read_unsubscribe(token)
    if email_id is None:
        return _private(render(request, "tracking/invalid.html", status=404))
    if request.method == "POST":
        recipient = services.unsubscribe(
            email_id=email_id,
            user_agent=request.META.get("HTTP_USER_AGENT", ""),
            now=timezone.now(),
            account_id=_account_served(request),
        )
        template = "tracking/unsubscribed.html"
    else:
        recipient = services.recipient_for_unsubscribe(email_id=email_id, account_id=_account_served(request))
        template = "tracking/unsubscribe.html"
    if recipient is None:
        return _private(render(request, "tracking/invalid.html", status=404))
    return _private(render(request, template, {"recipient": recipient}))


@require_http_methods(["GET"])
def tracking_domain_check(request: HttpRequest, token: str) -> HttpResponse:
    """The answer only this site can give to a check of a tracking domain, on the name the token was
    signed for (sending.tracking_domains.check fetches it); 404 anywhere else or for a bad token."""
    read = tracking_domains.read_check_token(token)
    host, _port = split_domain_port(request.get_host())
    if read is None or read[1] != host:
        return _private(HttpResponseNotFound("Not found.", content_type="text/plain"))
    return _private(HttpResponse(tracking_domains.check_answer(token), content_type="text/plain"))


@require_http_methods(["GET", "HEAD"])
def tracking_domain_allowed(request: HttpRequest) -> HttpResponse:
    """For a TLS proxy that gets certificates on demand (Caddy's `ask`): 200 for a verified tracking
    domain, or one whose check is running (the check's HTTPS fetch needs the certificate); else 404."""
    domain = (request.GET.get("domain") or "").strip().rstrip(".").lower()
    since = timezone.now() - timedelta(seconds=settings.TRACKING_DOMAIN_CHECK_MAX_AGE)
    if domain and (
        domain in sending_selectors.verified_tracking_domains()
        or sending_selectors.tracking_domain_being_checked(domain=domain, since=since)
    ):
        return HttpResponse("allowed", content_type="text/plain")
    return HttpResponseNotFound("not a tracking domain", content_type="text/plain")
