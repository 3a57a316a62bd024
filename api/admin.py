from django.contrib import admin, messages
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils import timezone

from accounts.owned_admin import OwnedModelAdmin
from api import services
from api.models import ApiToken


@admin.register(ApiToken)
class ApiTokenAdmin(OwnedModelAdmin):
    list_display = ("name", "prefix", "state", "created_at", "last_used_at", "revoked_at")
    fields = ("name",)
    actions = ["revoke"]

    @admin.display(description="State")
    def state(self, token: ApiToken) -> str:
        return "Revoked" if token.revoked_at else "Live"

    def has_delete_permission(self, request: HttpRequest, obj: ApiToken | None = None) -> bool:
        return False

    def save_model(self, request: HttpRequest, obj: ApiToken, form, change: bool) -> None:
        if change:
            obj.save(update_fields=["name"])
            return
        token, raw = services.create_token(owner=request.user, name=obj.name)  # type: ignore[arg-type]
        obj.pk, obj.prefix = token.pk, token.prefix
        request._new_api_token = raw  # type: ignore[attr-defined]  # shown once by response_add

    def response_add(self, request: HttpRequest, obj: ApiToken, post_url_continue: str | None = None) -> HttpResponse:
        """The token itself, shown on this one page and never again (only its digest is kept)."""
        context = {
            **self.admin_site.each_context(request),
            "title": "Your new API token",
            "opts": self.opts,
            "token": obj,
            "raw_token": request._new_api_token,  # type: ignore[attr-defined]
        }
        return TemplateResponse(request, "admin/api/apitoken/created.html", context)

    @admin.action(description="Revoke selected tokens (they stop working at once, for good)")
    def revoke(self, request: HttpRequest, queryset) -> None:
        now = timezone.now()
        revoked = sum(services.revoke_token(token=token, now=now) for token in queryset)
        self.message_user(request, f"{revoked} token(s) revoked.", messages.SUCCESS)
