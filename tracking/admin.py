from django.contrib import admin

from accounts.owned_admin import OwnedModelAdmin, ReadOnlyAdminMixin
from tracking.models import Event, Link


@admin.register(Link)
class LinkAdmin(ReadOnlyAdminMixin, OwnedModelAdmin):
    list_display = ("url", "campaign", "created_at")
    list_filter = ("campaign",)
    list_select_related = ("campaign",)
    search_fields = ("url",)


@admin.register(Event)
class EventAdmin(ReadOnlyAdminMixin, OwnedModelAdmin):
    list_display = ("at", "kind", "email", "campaign", "link", "is_machine")
    list_filter = ("kind", "is_machine", "campaign")
    list_select_related = ("email", "campaign", "link")
    search_fields = ("email__to_email",)
