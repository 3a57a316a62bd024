from datetime import datetime
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.contrib import admin, messages
from django.db.models import Count, QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from accounts.owned_admin import OwnedModelAdmin, without_fields
from sending import esp, esp_webhooks, rates, selectors, services, tasks
from sending.forms import SmtpAccountForm
from sending.models import SmtpAccount

if TYPE_CHECKING:
    from django.contrib.admin.options import _FieldsetSpec  # django-stubs' name for a fieldsets value


@admin.register(SmtpAccount)
class SmtpAccountAdmin(OwnedModelAdmin):
    form = SmtpAccountForm
    list_display = (
        # State and the last test first: the limits' columns pass the edge of a laptop's window.
        "name",
        "from_email",
        "host",
        "port",
        "security",
        "state",
        "test_result",
        "max_per_minute",
        "max_per_hour",
        "max_per_day",
        "batch_size",
        "campaign_count",
    )
    list_filter = ("security",)
    search_fields = ("name", "host", "from_email", "username")
    readonly_fields = (
        "sending_rate",
        "paused_until",
        "pause_reason",
        "connection",
        "last_connection_error",
        "last_connection_error_at",
        "last_tested_at",
        "last_test_result",
        "esp_webhook_panel",
    )
    actions = ["test_connection", "resume_sending", "forget_learned_rate", "regenerate_esp_webhook"]
    change_list_template = "admin/sending/smtpaccount/change_list.html"
    fieldsets = (
        (None, {"fields": ("owner", "name", "from_name", "from_email", "reply_to", "bounce_address")}),
        ("Server", {"fields": ("preset", "host", "port", "security", "username", "new_password", "clear_password")}),
        ("Limits", {"fields": ("max_per_minute", "max_per_hour", "max_per_day", "batch_size", "sending_rate")}),
        (
            "Bounces and complaints from the ESP",
            {"fields": ("esp", "new_esp_signing_key", "clear_esp_signing_key", "esp_webhook_panel")},
        ),
        (
            "State",
            {
                "fields": (
                    "paused_until",
                    "pause_reason",
                    "connection",
                    "last_connection_error",
                    "last_connection_error_at",
                    "last_tested_at",
                    "last_test_result",
                )
            },
        ),
    )

    def get_fieldsets(self, request: HttpRequest, obj: SmtpAccount | None = None) -> "_FieldsetSpec":
        # The base drops fields the form lacks (the owner, for marketers). The form
        # itself removes clear_password when no password is stored, so drop it too.
        fieldsets = super().get_fieldsets(request, obj)
        if obj is not None and obj.has_password:
            return fieldsets
        return without_fields(fieldsets, {"clear_password"})

    def save_model(self, request: HttpRequest, obj: SmtpAccount, form: SmtpAccountForm, change: bool) -> None:
        if change:
            # Only the form's columns: workers write the engine's fields of this row meanwhile.
            obj.save(update_fields=form.model_fields_written())
        else:
            super().save_model(request, obj, form, change)
        esp_webhooks.configure(account=obj, signing_key=form.signing_key_change())

    def get_queryset(self, request: HttpRequest) -> QuerySet[SmtpAccount]:
        accounts: QuerySet[SmtpAccount] = super().get_queryset(request)
        return accounts.annotate(campaign_count=Count("campaigns"))

    @admin.display(description="Campaigns", ordering="campaign_count")
    def campaign_count(self, obj: Any) -> int:
        count: int = obj.campaign_count  # annotated by get_queryset
        return count

    @admin.display(description="State")
    def state(self, obj: SmtpAccount) -> str:
        if obj.is_paused:
            return f"Paused: {obj.pause_reason}"
        if obj.is_unreachable:
            return f"Cannot reach the server; next try at {_local(_next_try(obj))}"
        if obj.learned_per_minute is not None:
            return f"Ready, at {rates.effective_per_minute(obj):.0f}/min learned from its server"
        return "Ready"

    @admin.display(description="Sending rate")
    def sending_rate(self, obj: SmtpAccount | None) -> str:
        if obj is None or obj.learned_per_minute is None:
            note = f" {obj.rate_note}" if obj and obj.rate_note else ""
            return f"The configured maximum: its server has not throttled it.{note}"
        return (
            f"{rates.effective_per_minute(obj):.0f}/min, learned from its server "
            f"(configured maximum {obj.max_per_minute}/min; since {_local(obj.rate_changed_at)}). {obj.rate_note}"
        )

    @admin.display(description="Connection")
    def connection(self, obj: SmtpAccount | None) -> str:
        if obj is None or not obj.is_unreachable:
            return "Reaches its server again" if obj and obj.last_connection_error else "No connection problem recorded"
        return (
            f"Cannot reach the server since {_local(obj.unreachable_since)}; next try at {_local(_next_try(obj))} "
            f"({obj.backoff_seconds} s after the last failed try; the wait doubles with each, up to "
            f"{settings.ACCOUNT_BACKOFF_MAX_SECONDS // 60} min). Its emails wait unspent."
        )

    @admin.display(description="Webhook")
    def esp_webhook_panel(self, obj: SmtpAccount | None) -> str:
        webhook = selectors.esp_webhook_of(account=obj) if obj is not None and obj.pk else None
        if obj is None or not obj.esp or webhook is None:
            return "Choose the ESP this account sends through and save: its webhook URL and setup steps show here."
        profile = esp.profile(obj.esp)
        key_state = ""
        if profile.signing_key_label:
            stored = "stored" if webhook.has_signing_key else "not stored yet"
            required = "required: every post is refused without it" if profile.signing_key_required else "optional"
            key_state = f"{profile.signing_key_label}: {stored} ({required})."
        last = f"last at {_local(webhook.last_event_at)}" if webhook.last_event_at else "none yet"
        return format_html(
            '<div class="esp-webhook"><p>Paste this URL, with its user name and password, into {}:</p>'
            '<p><code class="esp-webhook-url">{}</code></p><ol>{}</ol><p>{}</p><p>Events received: {} ({}).</p>'
            "<p>The action <em>Regenerate the ESP webhook URL</em> makes a new URL and password; "
            "the old ones stop working at once.</p></div>",
            obj.get_esp_display(),
            esp_webhooks.webhook_url(webhook),
            format_html_join("", "<li>{}</li>", ((step,) for step in profile.setup_steps)),
            key_state,
            webhook.events_received,
            last,
        )

    @admin.display(description="Last test result", ordering="last_tested_at")
    def test_result(self, obj: SmtpAccount) -> str:
        if obj.last_test_result == SmtpAccount.CONNECTION_TESTING and not selectors.connection_test_waiting(
            account=obj, now=timezone.now()
        ):
            return (
                f"{obj.last_test_result} (asked at {_local(obj.last_tested_at)}; "
                "no worker has run it: is Celery running?)"
            )
        return obj.last_test_result

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        response = super().changelist_view(request, extra_context)
        context = response.context_data if isinstance(response, TemplateResponse) else None
        changelist = (context or {}).get("cl")
        now = timezone.now()
        if (
            context is not None
            and changelist is not None
            and any(selectors.connection_test_waiting(account=account, now=now) for account in changelist.result_list)
        ):
            context["refresh_seconds"] = CONNECTION_TEST_REFRESH_SECONDS
        return response

    @admin.action(description="Test connection")
    def test_connection(self, request: HttpRequest, queryset: QuerySet[SmtpAccount]) -> None:
        # In a Celery task: a slow server would hold this web worker for up to twice SMTP_TIMEOUT.
        names = []
        for account in queryset:
            services.start_connection_test(account=account, enqueue=tasks.enqueue_connection_test)
            names.append(account.name)
        self.message_user(
            request,
            f"Testing the connection of {', '.join(names)}… The result shows in 'Last test result' when it is ready.",
            messages.INFO,
        )

    @admin.action(description="Resume sending now (end the pause)")
    def resume_sending(self, request: HttpRequest, queryset: QuerySet[SmtpAccount]) -> None:
        now = timezone.now()
        resumed = sum(services.resume_account(account_id=account.pk, now=now) for account in queryset)
        self.message_user(request, f"{resumed} paused account(s) may send again.", messages.SUCCESS)

    @admin.action(description="Forget the learned rate (try the configured maximum again)")
    def forget_learned_rate(self, request: HttpRequest, queryset: QuerySet[SmtpAccount]) -> None:
        for account in queryset:
            rates.forget_learned_rate(account_id=account.pk)
        self.message_user(request, f"{queryset.count()} account(s) back at their configured maximum.", messages.SUCCESS)

    @admin.action(description="Regenerate the ESP webhook URL (the old one stops working)")
    def regenerate_esp_webhook(self, request: HttpRequest, queryset: QuerySet[SmtpAccount]) -> None:
        regenerated = [account.name for account in queryset if esp_webhooks.regenerate(account=account)]
        if regenerated:
            self.message_user(
                request,
                f"New webhook URL for {', '.join(regenerated)}: paste it into the ESP's console.",
                messages.SUCCESS,
            )
        else:
            self.message_user(request, "None of these accounts names an ESP.", messages.WARNING)


# The list reloads itself this often while a connection test it shows is under way.
CONNECTION_TEST_REFRESH_SECONDS = 3


def _next_try(account: SmtpAccount) -> datetime:
    # A rest already over: the next dispatcher tick tries.
    return max(account.backoff_until or timezone.now(), timezone.now())


def _local(moment: datetime | None) -> str:
    return timezone.localtime(moment).strftime("%d %b %H:%M") if moment else "now"
