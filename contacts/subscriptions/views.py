"""The public pages of the subscription forms: the hosted form (which embedded snippets post to) and the
confirmation link. Each view reads its signed token and calls one service. No IP address is stored:
the service keeps only a keyed hash of it. The client's address is read behind TRUSTED_PROXIES
(accounts.client_address), never from a header a client could write itself."""

from django.conf import settings
from django.core.exceptions import ValidationError
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from accounts.client_address import client_ip, rate_limit_key
from contacts.selectors import subscriptions as selectors
from contacts.services import subscriptions
from contacts.services.subscriptions import Submission
from contacts.subscriptions.forms import HONEYPOT_FIELD, PublicSubscribeForm

# One page per kind of form, the same for every address, whatever its state.
OUTCOME_TEMPLATES = {
    Submission.CHECK_INBOX: "subscriptions/check_inbox.html",
    Submission.THANKS: "subscriptions/thanks.html",
}


def _private(response):
    response["Cache-Control"] = "no-store, private, max-age=0"
    response["Referrer-Policy"] = "no-referrer"
    response["X-Robots-Tag"] = "noindex, nofollow"
    return response


def _organization(form):
    return form.owner.organization or form.owner.username


def _problem(request, *, heading, message, status):
    return _private(
        render(request, "subscriptions/problem.html", {"heading": heading, "message": message}, status=status)
    )


def _not_found(request):
    return _problem(
        request,
        heading="This form is not available",
        message="The link may have been mistyped, or the form has been closed.",
        status=404,
    )


# Embedded snippets post from other websites, with no cookie and no CSRF token: the signed form token
# in the POST (checked by PublicSubscribeForm) is what a submission must carry instead.
@csrf_exempt
@require_http_methods(["GET", "HEAD", "POST"])
def subscribe_page(request, token):
    subscription_form = selectors.open_form(page_token=token)
    if subscription_form is None:
        return _not_found(request)
    form = PublicSubscribeForm(request.POST if request.method == "POST" else None, subscription_form=subscription_form)
    context = {
        "subscription_form": subscription_form,
        "organization": _organization(subscription_form),
        "hours": settings.SUBSCRIPTION_CONFIRM_MAX_AGE // 3600,
        "form": form,
    }
    status = 200
    if request.method == "POST" and form.is_valid():
        try:
            submission = subscriptions.subscribe_request(
                form=subscription_form,
                email=form.cleaned_data["email"],
                name=form.cleaned_data["name"],
                attributes=form.attributes,
                honeypot=form.cleaned_data[HONEYPOT_FIELD],
                ip=client_ip(request),
                client_key=rate_limit_key(request),
                now=timezone.now(),
            )
        except ValidationError as exc:
            form.add_error("email", exc)
        except subscriptions.RateLimited as exc:
            form.add_error(None, str(exc))
            status = 429
        except subscriptions.SubscriptionError as exc:
            form.add_error(None, str(exc))
            status = 503
        else:
            context["email"] = submission.email
            return _private(render(request, OUTCOME_TEMPLATES[submission.outcome], context))
    elif request.method == "POST":
        status = 400
    return _private(render(request, "subscriptions/subscribe.html", context, status=status))


# A scanner fetching the link (GET) must not subscribe anyone: the page asks, the POST confirms.
# CSRF-exempt on purpose: the signed token in the URL, mailed only to the address, is what a confirmation
# must carry, and a CSRF check would refuse real subscribers. These pages send `Referrer-Policy:
# no-referrer` (the token must not leak), so Chromium posts the button with `Origin: null`, which Django's
# check rejects; and a visitor who blocks cookies could never confirm.
@csrf_exempt
@require_http_methods(["GET", "HEAD", "POST"])
def confirm_page(request, token):
    if request.method == "POST":
        try:
            confirmation = subscriptions.confirm(token=token, now=timezone.now())
        except subscriptions.SubscriptionError as exc:
            return _problem(request, heading="Subscription not confirmed", message=str(exc), status=400)
        form = confirmation.request.form
        return _private(
            render(
                request,
                "subscriptions/subscribed.html",
                {
                    "subscription_form": form,
                    "organization": _organization(form),
                    "email": confirmation.request.email,
                    "resubscribed": confirmation.resubscribed,
                },
            )
        )
    try:
        subscription_request = selectors.request_to_confirm(token=token)
    except selectors.LinkNotValid as exc:
        return _problem(request, heading="Subscription not confirmed", message=str(exc), status=400)
    form = subscription_request.form
    return _private(
        render(
            request,
            "subscriptions/confirm.html",
            {
                "subscription_form": form,
                "organization": _organization(form),
                "subscription_request": subscription_request,
            },
        )
    )
