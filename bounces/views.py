"""The ESP webhook's public endpoint: /esp/<token>/, posted to by the account's ESP.

No cookie, no CSRF token: the URL's token names the account, its basic auth and the ESP's signature
authenticate the post (bounces.esp). A client whose posts keep failing is refused for a while.
"""

import logging

from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from accounts.client_address import rate_limit_key
from bounces import esp, sns

log = logging.getLogger(__name__)


@csrf_exempt
@require_http_methods(["POST", "HEAD"])
def esp_webhook(request: HttpRequest, token: str) -> HttpResponse:
    """200 once the post's events are applied; 404 for an unknown URL, 400 for a post that is not the
    ESP's (or not readable), 429 while the client is past its failures, 503 when SNS is unreachable.
    A HEAD (Mandrill checks the URL so when it is entered) answers and changes nothing."""
    client = rate_limit_key(request)
    if esp.client_failing(client_key=client):
        return HttpResponse("Too many failed posts: try again later.", status=429, content_type="text/plain")
    webhook = esp.webhook_for(token=token)
    if webhook is None:
        esp.count_failure(client_key=client)
        return HttpResponse("No such webhook.", status=404, content_type="text/plain")
    if request.method == "HEAD":
        return HttpResponse()
    try:
        events = esp.read_post(request=request, webhook=webhook)
    except (esp.Refused, esp.Unreadable) as exc:
        esp.count_failure(client_key=client)
        log.warning("ESP webhook of account %s: post refused: %s", webhook.account_id, exc)
        return HttpResponse(f"Refused: {exc}", status=400, content_type="text/plain")
    except sns.SnsUnavailable as exc:
        log.warning("ESP webhook of account %s: %s", webhook.account_id, exc)
        return HttpResponse("SNS could not be reached; try again.", status=503, content_type="text/plain")
    esp.apply_events(webhook=webhook, events=events, now=timezone.now())
    return HttpResponse("OK", content_type="text/plain")
