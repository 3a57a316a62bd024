"""Public tracking endpoints: the open pixel, click redirects and unsubscribe pages.

Each view reads its signed token and calls one service. Nothing here stores an IP address.
"""

import base64
import logging

from django.db import DatabaseError
from django.http import HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

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


def open_pixel(request, token):
    """Always the GIF, whatever the token: a forged or stale one learns nothing. Only a GET is an open."""
    email_id = tokens.read_open(token)
    if email_id is not None and request.method == "GET":
        try:
            services.record_open(
                email_id=email_id, user_agent=request.META.get("HTTP_USER_AGENT", ""), now=timezone.now()
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
            )
        else:
            url = selectors.click_target(email_id=email_id, link_id=link_id)
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
            email_id=email_id, user_agent=request.META.get("HTTP_USER_AGENT", ""), now=timezone.now()
        )
        template = "tracking/unsubscribed.html"
    else:
        recipient = services.recipient_for_unsubscribe(email_id=email_id)
        template = "tracking/unsubscribe.html"
    if recipient is None:
        return _private(render(request, "tracking/invalid.html", status=404))
    return _private(render(request, template, {"recipient": recipient}))
