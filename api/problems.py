"""Errors as RFC 9457 problem details (`application/problem+json`): a title, the status, a detail a
person can act on, and for bad input the fields at fault. No input makes the API answer 5xx."""

from collections.abc import Iterable
from typing import Any

from django.core.exceptions import RequestDataTooBig
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.http.request import RawPostDataException
from ninja import NinjaAPI
from ninja.errors import AuthenticationError, HttpError
from ninja.errors import ValidationError as NinjaValidationError

from api.auth import RateLimited

CONTENT_TYPE = "application/problem+json"
TITLES = {
    400: "Bad request",
    401: "Not authenticated",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    413: "Request too large",
    422: "Invalid input",
    429: "Too many requests",
}


class Conflict(Exception):
    """The request clashes with what exists (e.g. a contact with this address); `existing` names it."""

    def __init__(self, detail: str, existing: dict[str, Any] | None = None):
        super().__init__(detail)
        self.existing = existing


def problem(
    api: NinjaAPI,
    request: HttpRequest,
    status: int,
    detail: str,
    *,
    errors: Iterable[dict[str, Any]] = (),
    existing: dict[str, Any] | None = None,
) -> HttpResponse:
    body: dict[str, Any] = {"type": "about:blank", "title": TITLES.get(status, "Error"), "status": status}
    body["detail"] = detail
    errors = list(errors)
    if errors:
        body["errors"] = errors
    if existing:
        body["existing"] = existing
    response = api.create_response(request, body, status=status)
    response["Content-Type"] = CONTENT_TYPE
    return response


def install(api: NinjaAPI) -> None:
    """Answer every expected error of `api` as a problem document."""

    @api.exception_handler(NinjaValidationError)
    def invalid_input(request: HttpRequest, exc: NinjaValidationError) -> HttpResponse:
        errors = [
            {"loc": list(e.get("loc", ())), "msg": str(e.get("msg", "")), "type": e.get("type", "")} for e in exc.errors
        ]
        return problem(api, request, 422, "The request has invalid fields; see errors.", errors=errors)

    @api.exception_handler(DjangoValidationError)
    def refused_input(request: HttpRequest, exc: DjangoValidationError) -> HttpResponse:
        return problem(api, request, 422, "The request has invalid fields; see errors.", errors=_django_errors(exc))

    @api.exception_handler(AuthenticationError)
    def unauthenticated(request: HttpRequest, exc: AuthenticationError) -> HttpResponse:
        response = problem(api, request, 401, "Send a live API token: Authorization: Bearer <token>.")
        response["WWW-Authenticate"] = 'Bearer realm="api"'
        return response

    @api.exception_handler(RateLimited)
    def rate_limited(request: HttpRequest, exc: RateLimited) -> HttpResponse:
        response = problem(api, request, 429, str(exc))
        response["Retry-After"] = str(exc.wait)
        return response

    @api.exception_handler(Http404)
    def not_found(request: HttpRequest, exc: Http404) -> HttpResponse:
        return problem(api, request, 404, str(exc) or "No such object.")

    @api.exception_handler(Conflict)
    def conflict(request: HttpRequest, exc: Conflict) -> HttpResponse:
        return problem(api, request, 409, str(exc), existing=exc.existing)

    @api.exception_handler(RequestDataTooBig)
    def too_large(request: HttpRequest, exc: RequestDataTooBig) -> HttpResponse:
        return problem(api, request, 413, "The request body is larger than this endpoint accepts.")

    @api.exception_handler(RawPostDataException)
    def unreadable(request: HttpRequest, exc: RawPostDataException) -> HttpResponse:
        return problem(api, request, 400, "The request body could not be read.")

    @api.exception_handler(HttpError)
    def http_error(request: HttpRequest, exc: HttpError) -> HttpResponse:
        return problem(api, request, exc.status_code, str(exc))


def _django_errors(exc: DjangoValidationError) -> list[dict[str, Any]]:
    if hasattr(exc, "error_dict"):
        return [
            {"loc": [field], "msg": message, "type": "value_error"}
            for field, messages in exc.message_dict.items()
            for message in messages
        ]
    return [{"loc": [], "msg": message, "type": "value_error"} for message in exc.messages]
