"""The REST API, version 1, at /api/v1/: its OpenAPI document at openapi.json, its docs at docs.

Every operation needs an API token (api.auth) and sees only the token owner's objects: another
marketer's object is a 404, as if it did not exist.
"""

from typing import Any

from ninja import NinjaAPI

from api import contacts, lists, problems
from api.auth import TokenAuth
from api.strict import refuse_unknown_parameters_and_nul


class ProblemsApi(NinjaAPI):
    """Declares every error response as `application/problem+json`, the type problems.py sends."""

    def get_openapi_schema(self, *args: Any, **kwargs: Any) -> Any:
        document = super().get_openapi_schema(*args, **kwargs)
        for operations in document["paths"].values():
            for operation in operations.values():
                for status, response in operation.get("responses", {}).items():
                    content = response.get("content", {})
                    if int(status) >= 400 and "application/json" in content:
                        content[problems.CONTENT_TYPE] = content.pop("application/json")
        return document


api = ProblemsApi(
    title="Campaign manager API",
    version="1",
    description=(
        "Contacts and lists of the marketer who owns the token. Authenticate with "
        "`Authorization: Bearer <token>` (make one on the admin's API tokens page). Errors are RFC 9457 "
        "problem details; lists are cursor-paginated."
    ),
    auth=TokenAuth(),
    urls_namespace="api-v1",
    openapi_url="/openapi.json",
    docs_url="/docs",
)
problems.install(api)
api.add_decorator(refuse_unknown_parameters_and_nul)
api.add_router("", contacts.router)
api.add_router("", lists.router)
