from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin

from accounts import services
from accounts.forms import AccessAwareLoginForm
from accounts.models import User

admin.site.site_header = "Campaign Manager"
admin.site.site_title = "Campaign Manager"
admin.site.index_title = "Dashboard"
admin.site.login_form = AccessAwareLoginForm


class SuperuserOnlyAdminMixin:
    """For the system's own models (users, schedules, task results): superusers only."""

    def has_module_permission(self, request):
        return request.user.is_active and request.user.is_superuser

    def has_view_permission(self, request, obj=None):
        return request.user.is_active and request.user.is_superuser

    def has_add_permission(self, request, *args):
        return request.user.is_active and request.user.is_superuser

    def has_change_permission(self, request, obj=None):
        return request.user.is_active and request.user.is_superuser

    def has_delete_permission(self, request, obj=None):
        return request.user.is_active and request.user.is_superuser


class AwaitingApprovalFilter(admin.SimpleListFilter):
    title = "approval"
    parameter_name = "approval"

    def lookups(self, request, model_admin):
        return [("waiting", "Waiting for approval"), ("unconfirmed", "Address not confirmed"), ("approved", "Approved")]

    def queryset(self, request, queryset):
        if self.value() == "waiting":
            return queryset.filter(approved_at__isnull=True, email_confirmed_at__isnull=False)
        if self.value() == "unconfirmed":
            return queryset.filter(email_confirmed_at__isnull=True)
        if self.value() == "approved":
            return queryset.filter(approved_at__isnull=False)
        return queryset


@admin.register(User)
class UserAdmin(SuperuserOnlyAdminMixin, DjangoUserAdmin):
    list_display = (
        "username",
        "email",
        "organization",
        "timezone",
        "email_confirmed_at",
        "approved_at",
        "access_expires_at",
        "is_active",
        "is_superuser",
    )
    list_filter = (AwaitingApprovalFilter, "is_active", "is_superuser", "groups")
    search_fields = ("username", "email", "organization")
    fieldsets = (
        *(DjangoUserAdmin.fieldsets or ()),
        ("Marketer", {"fields": ("timezone", "organization", "postal_address")}),
        ("Access", {"fields": ("email_confirmed_at", "approved_at", "access_expires_at")}),
    )
    actions = ["approve_selected"]

    @admin.action(description="Approve selected accounts")
    def approve_selected(self, request, queryset):
        count = services.approve(users=queryset)
        self.message_user(request, f"{count} account(s) approved.", messages.SUCCESS)


def _restrict_to_superusers(model_admin_class):
    """Make an installed third-party admin superuser-only."""
    return type(model_admin_class.__name__, (SuperuserOnlyAdminMixin, model_admin_class), {})


def _lock_down_system_admins():
    from axes import admin as axes_admin  # noqa: F401  (registers its admins)
    from axes.models import AccessAttempt, AccessFailureLog, AccessLog
    from django.contrib.auth.models import Group
    from django_celery_beat import admin as beat_admin  # noqa: F401  (registers its admins)
    from django_celery_beat.models import (
        ClockedSchedule,
        CrontabSchedule,
        IntervalSchedule,
        PeriodicTask,
        SolarSchedule,
    )
    from django_celery_results import admin as results_admin  # noqa: F401
    from django_celery_results.models import ChordCounter, GroupResult, TaskResult

    for model in (
        Group,
        PeriodicTask,
        IntervalSchedule,
        CrontabSchedule,
        SolarSchedule,
        ClockedSchedule,
        TaskResult,
        GroupResult,
        ChordCounter,
        AccessAttempt,
        AccessLog,
        AccessFailureLog,
    ):
        if admin.site.is_registered(model):
            model_admin = admin.site._registry[model]
            admin.site.unregister(model)
            admin.site.register(model, _restrict_to_superusers(type(model_admin)))


_lock_down_system_admins()
