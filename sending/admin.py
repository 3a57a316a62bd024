from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin.utils import display_for_field, unquote
from django.core.exceptions import PermissionDenied
from django.db.models import Count, Field, QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils import formats, timezone
from django.utils.html import format_html, format_html_join

from accounts.owned_admin import OwnedInlineMixin, OwnedModelAdmin, without_fields
from delivery import message
from sending import crypto, dkim, esp, esp_webhooks, rates, selectors, services, tasks, tracking_domains
from sending.forms import BounceMailboxForm, DkimKeyForm, SmtpAccountForm
from sending.models import BounceMailbox, SmtpAccount, SmtpAccountState

if TYPE_CHECKING:
    from django.contrib.admin.options import _FieldsetSpec  # django-stubs' name for a fieldsets value


class BounceMailboxInline(OwnedInlineMixin, admin.StackedInline):  # type: ignore[type-arg]
    """The account's bounce mailbox, on the account's page: only there, so another owner's is a 404 as
    their account is."""

    model = BounceMailbox
    form = BounceMailboxForm
    max_num = 1
    extra = 1  # an empty form to fill in, ignored while untouched
    verbose_name_plural = "Bounce mailbox"
    fields = (
        "enabled",
        "protocol",
        "host",
        "port",
        "security",
        "username",
        "new_password",
        "folder",
        "reading",
        "test_result",
    )
    readonly_fields = ("reading", "test_result")

    @admin.display(description="Reading")
    def reading(self, obj: BounceMailbox | None) -> str:
        if obj is None or obj.last_checked_at is None:
            return "Not read yet."
        if obj.last_error_at is not None and obj.last_error_at >= obj.last_checked_at:
            return f"Failed at {_local(obj.last_error_at)}: {obj.last_error}"
        error = f" Last error ({_local(obj.last_error_at)}): {obj.last_error}" if obj.last_error_at else ""
        return f"Read at {_local(obj.last_checked_at)}; {obj.processed_count} bounce(s) processed in all.{error}"

    @admin.display(description="Last test")
    def test_result(self, obj: BounceMailbox | None) -> str:
        if obj is None or obj.last_tested_at is None:
            return "Not tested yet: save, then use 'Save and test the bounce mailbox'."
        return f"{obj.last_test_result} ({_local(obj.last_tested_at)})"


@admin.register(SmtpAccount)
class SmtpAccountAdmin(OwnedModelAdmin):
    form = SmtpAccountForm
    inlines = (BounceMailboxInline,)
    list_display = (
        # The server and the limits each one column: eleven columns passed the edge of a 1366 px window.
        "name",
        "from_email",
        "server",
        "sending_state",
        "test_result",
        "limits",
        "campaign_count",
    )
    list_filter = ("security",)
    search_fields = ("name", "host", "from_email", "username")
    # The engine's state (account.state) is shown, never edited: no inline, only these read-only
    # fields, and the actions below call sending.services.
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
    actions = [
        "test_connection",
        "test_bounce_mailbox",
        "resume_sending",
        "forget_learned_rate",
        "regenerate_esp_webhook",
    ]
    change_list_template = "admin/sending/smtpaccount/change_list.html"
    change_form_template = "admin/sending/smtpaccount/change_form.html"
    fieldsets = (
        (
            None,
            {"fields": ("owner", "name", "from_name", "from_email", "reply_to", "bounce_address", "custom_headers")},
        ),
        ("Server", {"fields": ("preset", "host", "port", "security", "username", "new_password", "clear_password")}),
        ("Limits", {"fields": ("max_per_minute", "max_per_hour", "max_per_day", "batch_size", "sending_rate")}),
        ("Tracking domain", {"fields": ("tracking_domain",)}),
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
            # Only the form's columns: the key rotation may rewrite the password of this row meanwhile.
            obj.save(update_fields=form.model_fields_written())
        else:
            super().save_model(request, obj, form, change)
        esp_webhooks.configure(account=obj, signing_key=form.signing_key_change())

    def get_urls(self) -> list[URLPattern]:
        return [
            path("<path:object_id>/dkim/", self.admin_site.admin_view(self.dkim_view), name="sending_smtpaccount_dkim"),
            path(
                "<path:object_id>/tracking-domain/",
                self.admin_site.admin_view(self.tracking_domain_view),
                name="sending_smtpaccount_tracking_domain",
            ),
            *super().get_urls(),
        ]

    def change_view(
        self, request: HttpRequest, object_id: str, form_url: str = "", extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        account = self.get_object(request, unquote(object_id))
        context = {
            **(extra_context or {}),
            **self._dkim_panel(request, account),
            **self._tracking_domain_panel(request, account),
        }
        return super().change_view(request, object_id, form_url, context)

    def _tracking_domain_panel(self, request: HttpRequest, account: SmtpAccount) -> dict[str, Any]:
        return {
            "tracking_record": tracking_domains.dns_record(account.tracking_domain),
            "tracking_site_url": settings.SITE_URL,
            "tracking_base_url": message.tracking_site(account),
            "tracking_domain_in_use": message.tracking_site(account) != settings.SITE_URL,
            "tracking_domain_url": reverse("admin:sending_smtpaccount_tracking_domain", args=[account.pk]),
            "tracking_domain_can_change": self.has_change_permission(request, account),
        }

    def tracking_domain_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """The tracking domain panel's Check button (POST, CSRF-checked): fetch the check URL on the
        domain and record the result. Another owner's account answers 404 (get_object)."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        account = self.get_object(request, unquote(object_id))
        if not self.has_change_permission(request, account):
            raise PermissionDenied
        result = tracking_domains.check(account=account, now=timezone.now())
        if result.verified:
            self.message_user(
                request,
                f"Tracking domain verified: messages use {message.tracking_site(account)} from now on. {result.detail}",
                messages.SUCCESS,
            )
        else:
            self.message_user(request, f"Tracking domain not verified: {result.detail}", messages.ERROR)
        change_url = reverse("admin:sending_smtpaccount_change", args=[account.pk])
        return HttpResponseRedirect(change_url + "#tracking-domain")

    def _dkim_panel(self, request: HttpRequest, account: SmtpAccount) -> dict[str, Any]:
        """The DKIM panel's context: the key's record (never the key), and the form for a new one,
        filled from the query string after a refused attempt so nothing typed is lost."""
        record, key_error = None, ""
        try:
            record = dkim.dkim_record(account)
        except (crypto.DecryptionError, dkim.DkimKeyError) as exc:
            key_error = str(exc)
        typed = {name: request.GET[f"dkim_{name}"] for name in DkimKeyForm.base_fields if f"dkim_{name}" in request.GET}
        initial = {
            "domain": account.dkim_domain or dkim.from_domain(account.from_email),
            "selector": _next_selector(account),
            "algorithm": account.dkim_algorithm,
        }
        return {
            "dkim_record": record,
            "dkim_key_error": key_error,
            "dkim_form": DkimKeyForm(initial={**initial, **typed}, prefix="dkim"),
            "dkim_url": reverse("admin:sending_smtpaccount_dkim", args=[account.pk]),
            "dkim_can_change": self.has_change_permission(request, account),
        }

    def dkim_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """The DKIM panel's buttons (POST, CSRF-checked): generate or rotate the key, turn signing on or
        off, check the published record. Another owner's account answers 404 (get_object)."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        account = self.get_object(request, unquote(object_id))
        if not self.has_change_permission(request, account):
            raise PermissionDenied
        change_url = reverse("admin:sending_smtpaccount_change", args=[account.pk])
        action = request.POST.get("dkim_action", "")
        if action == "generate":
            return self._generate_dkim_key(request, account, change_url)
        if action in ("enable", "disable"):
            try:
                services.set_dkim_signing(account=account, enabled=action == "enable")
            except dkim.DkimSetupError as exc:
                self.message_user(request, f"DKIM signing not turned on: {exc}", messages.ERROR)
            else:
                state = "now signs" if account.dkim_enabled else "no longer signs"
                self.message_user(request, f"{account.name} {state} its messages with DKIM.", messages.SUCCESS)
        elif action == "check":
            self._check_dkim_record(request, account)
        else:
            self.message_user(request, "Unknown DKIM action: nothing was changed.", messages.ERROR)
        return HttpResponseRedirect(change_url + "#dkim")

    def _generate_dkim_key(self, request: HttpRequest, account: SmtpAccount, change_url: str) -> HttpResponse:
        form = DkimKeyForm(request.POST, prefix="dkim")
        error = ""
        if not form.is_valid():
            error = "; ".join(f"{form[name].label}: {' '.join(map(str, errs))}" for name, errs in form.errors.items())
        else:
            try:
                services.generate_dkim_key(account=account, now=timezone.now(), **form.cleaned_data)
            except dkim.DkimSetupError as exc:
                error = str(exc)
        if error:
            self.message_user(request, f"No DKIM key made: {error}", messages.ERROR)
            typed = {f"dkim_{name}": request.POST.get(f"dkim-{name}", "") for name in DkimKeyForm.base_fields}
            return HttpResponseRedirect(f"{change_url}?{urlencode(typed)}#dkim")
        self.message_user(
            request,
            f"New DKIM key made: publish the TXT record {account.dkim_selector}._domainkey.{account.dkim_domain} "
            "below, then check it"
            + (
                " (messages are signed with the new key from now on)."
                if account.dkim_enabled
                else " and turn signing on."
            ),
            messages.SUCCESS,
        )
        return HttpResponseRedirect(change_url + "#dkim")

    def _check_dkim_record(self, request: HttpRequest, account: SmtpAccount) -> None:
        try:
            record = dkim.dkim_record(account)
        except (crypto.DecryptionError, dkim.DkimKeyError) as exc:
            self.message_user(request, f"DKIM: {exc}", messages.ERROR)
            return
        if record is None:
            self.message_user(request, "DKIM: generate a key first.", messages.ERROR)
            return
        check = dkim.check_published_record(record)
        level = {
            dkim.DnsOutcome.MATCHES: messages.SUCCESS,
            dkim.DnsOutcome.DIFFERS: messages.WARNING,
            dkim.DnsOutcome.NOT_FOUND: messages.WARNING,
        }.get(check.outcome, messages.ERROR)
        self.message_user(request, f"DKIM record {check.outcome}: {check.detail}", level)

    def get_queryset(self, request: HttpRequest) -> QuerySet[SmtpAccount]:
        accounts: QuerySet[SmtpAccount] = super().get_queryset(request)
        return accounts.select_related("state").annotate(campaign_count=Count("campaigns"))

    @admin.display(description="Server", ordering="host")
    def server(self, obj: SmtpAccount) -> str:
        return f"{obj.host}:{obj.port} ({obj.get_security_display()})"

    @admin.display(description="Limits", ordering="max_per_minute")
    def limits(self, obj: SmtpAccount) -> str:
        return (
            f"{obj.max_per_minute:,}/min · {obj.max_per_hour:,}/hour · {obj.max_per_day:,}/day, "
            f"in batches of {obj.batch_size:,}"
        )

    @admin.display(description="Campaigns", ordering="campaign_count")
    def campaign_count(self, obj: Any) -> int:
        count: int = obj.campaign_count  # annotated by get_queryset
        return count

    # Not `state`: the list would show the account's state row (a model attribute wins over this method).
    @admin.display(description="State")
    def sending_state(self, obj: SmtpAccount) -> str:
        if obj.is_paused:
            return f"Paused: {obj.state.pause_reason}"
        if obj.is_unreachable:
            return f"Cannot reach the server; next try at {_local(_next_try(obj.state))}"
        if obj.state.learned_per_minute is not None:
            return f"Ready, at {rates.effective_per_minute(obj):.0f}/min learned from its server"
        return "Ready"

    @admin.display(description="Sending rate")
    def sending_rate(self, obj: SmtpAccount | None) -> str:
        state = _state_of(obj)
        if obj is None or state is None or state.learned_per_minute is None:
            note = f" {state.rate_note}" if state and state.rate_note else ""
            return f"The configured maximum: its server has not throttled it.{note}"
        return (
            f"{rates.effective_per_minute(obj):.0f}/min, learned from its server "
            f"(configured maximum {obj.max_per_minute}/min; since {_local(state.rate_changed_at)}). {state.rate_note}"
        )

    @admin.display(description="Connection")
    def connection(self, obj: SmtpAccount | None) -> str:
        state = _state_of(obj)
        if state is None or not state.is_unreachable:
            return (
                "Reaches its server again"
                if state and state.last_connection_error
                else "No connection problem recorded"
            )
        return (
            f"Cannot reach the server since {_local(state.unreachable_since)}; next try at {_local(_next_try(state))} "
            f"({state.backoff_seconds} s after the last failed try; the wait doubles with each, up to "
            f"{settings.ACCOUNT_BACKOFF_MAX_SECONDS // 60} min). Its emails wait unspent."
        )

    # The state row's fields, shown as the admin shows a read-only field of the account's own.

    @admin.display(description="Paused until")
    def paused_until(self, obj: SmtpAccount | None) -> str:
        return self._state_field(obj, "paused_until")

    @admin.display(description="Pause reason")
    def pause_reason(self, obj: SmtpAccount | None) -> str:
        return self._state_field(obj, "pause_reason")

    @admin.display(description="Last connection error")
    def last_connection_error(self, obj: SmtpAccount | None) -> str:
        return self._state_field(obj, "last_connection_error")

    @admin.display(description="Last connection error at")
    def last_connection_error_at(self, obj: SmtpAccount | None) -> str:
        return self._state_field(obj, "last_connection_error_at")

    @admin.display(description="Last tested at")
    def last_tested_at(self, obj: SmtpAccount | None) -> str:
        return self._state_field(obj, "last_tested_at")

    @admin.display(description="Last test result")
    def last_test_result(self, obj: SmtpAccount | None) -> str:
        return self._state_field(obj, "last_test_result")

    def _state_field(self, account: SmtpAccount | None, name: str) -> str:
        state = _state_of(account)
        value = getattr(state, name) if state else None
        field = SmtpAccountState._meta.get_field(name)
        assert isinstance(field, Field)  # a column, not a relation: narrows the type
        return str(display_for_field(value, field, self.get_empty_value_display()))

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

    @admin.display(description="Last test result", ordering="state__last_tested_at")
    def test_result(self, obj: SmtpAccount) -> str:
        state = obj.state
        if state.last_test_result == SmtpAccountState.CONNECTION_TESTING and not selectors.connection_test_waiting(
            account=obj, now=timezone.now()
        ):
            return (
                f"{state.last_test_result} (asked at {_local(state.last_tested_at)}; "
                "no worker has run it: is Celery running?)"
            )
        return state.last_test_result

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

    @admin.action(description="Test the bounce mailbox")
    def test_bounce_mailbox(self, request: HttpRequest, queryset: QuerySet[SmtpAccount]) -> None:
        mailboxes = BounceMailbox.objects.filter(account__in=queryset).select_related("account")
        names = [self._start_mailbox_test(mailbox) for mailbox in mailboxes]
        if not names:
            self.message_user(request, "None of these accounts has a bounce mailbox.", messages.WARNING)
            return
        self.message_user(
            request,
            f"Testing the bounce mailbox of {', '.join(names)}… The result shows on the account's page.",
            messages.INFO,
        )

    def response_change(self, request: HttpRequest, obj: SmtpAccount) -> HttpResponse:
        if "_test_mailbox" not in request.POST:
            return super().response_change(request, obj)
        mailbox = BounceMailbox.objects.filter(account=obj).first()
        if mailbox is None:
            self.message_user(request, "Saved. This account has no bounce mailbox to test.", messages.WARNING)
        else:
            self._start_mailbox_test(mailbox)
            self.message_user(
                request, "Saved. Testing the bounce mailbox… reload this page for the result.", messages.INFO
            )
        return HttpResponseRedirect(request.path)

    def _start_mailbox_test(self, mailbox: BounceMailbox) -> str:
        # In a Celery task: a slow server would hold this web worker for MAILBOX_TIMEOUT per step.
        services.start_mailbox_test(mailbox=mailbox, enqueue=tasks.enqueue_mailbox_test)
        return mailbox.account.name

    @admin.action(description="Resume sending now (end the pause)")
    def resume_sending(self, request: HttpRequest, queryset: QuerySet[SmtpAccount]) -> None:
        now = timezone.now()
        resumed = sum(services.resume_account(account_id=account.pk, now=now) for account in queryset)
        self.message_user(request, f"{resumed} paused account(s) may send again.", messages.SUCCESS)

    @admin.action(description="Forget the learned rate (try the configured maximum again)")
    def forget_learned_rate(self, request: HttpRequest, queryset: QuerySet[SmtpAccount]) -> None:
        for account in queryset:
            services.forget_learned_rate(account_id=account.pk)
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


def _state_of(account: SmtpAccount | None) -> SmtpAccountState | None:
    # An account being added has no state row yet: the database makes it with the account.
    return account.state if account is not None and account.pk else None


def _next_try(state: SmtpAccountState) -> datetime:
    # A rest already over: the next dispatcher tick tries.
    return max(state.backoff_until or timezone.now(), timezone.now())


def _next_selector(account: SmtpAccount) -> str:
    """A selector for a new key: the year and month, never the current key's own (a rotation keeps
    the old record valid for mail still on its way)."""
    selector = timezone.localtime().strftime("cm%Y%m")
    return selector + "b" if selector == account.dkim_selector else selector


def _local(moment: datetime | None) -> str:
    # As the admin shows its own dates: in the user's zone (the middleware's), in DATETIME_FORMAT.
    return formats.date_format(timezone.localtime(moment), "DATETIME_FORMAT") if moment else "now"
