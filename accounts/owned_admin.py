"""The admin base every owned model uses, so each marketer sees only their own.

Scoping happens in one place per concern:
- `get_queryset` (lists, change, delete, history, actions, autocomplete all read it);
- foreign-key and many-to-many choices, for forms and inlines;
- list filters over relations show only related objects the marketer can see;
- a missing or foreign object id answers 404 instead of the admin's redirect.
Superusers see everything.
"""

from collections.abc import Collection
from typing import TYPE_CHECKING, Any

from django.contrib import admin
from django.contrib.admin.filters import RelatedOnlyFieldListFilter
from django.contrib.admin.views.autocomplete import AutocompleteJsonView
from django.core.exceptions import FieldDoesNotExist, PermissionDenied
from django.db.models import ForeignObjectRel, QuerySet
from django.http import Http404, HttpRequest

if TYPE_CHECKING:
    from django.contrib.admin.options import _FieldsetSpec  # django-stubs' name for a fieldsets value


def owner_lookup(model):
    """The ORM path from `model` to its owner, or None if it is not owned."""
    path = getattr(model, "owner_path", None)
    if path:
        return path
    try:
        model._meta.get_field("owner")
    except FieldDoesNotExist:
        return None
    return "owner"


def scope_to_user(queryset, user):
    if user.is_superuser:
        return queryset
    path = owner_lookup(queryset.model)
    if path is None:
        return queryset
    return queryset.filter(**{path: user})


def without_fields(fieldsets: "_FieldsetSpec", unwanted: Collection[str]) -> "_FieldsetSpec":
    """`fieldsets` minus the field names in `unwanted` (rows and emptied fieldsets too)."""
    result: list[Any] = []
    for title, opts in fieldsets:
        fields: list[str | tuple[str, ...]] = []
        for item in opts.get("fields", ()):
            if isinstance(item, (list, tuple)):
                item = tuple(name for name in item if name not in unwanted)
                if item:
                    fields.append(item)
            elif item not in unwanted:
                fields.append(item)
        if fields:
            result.append((title, {**opts, "fields": tuple(fields)}))
    return result


class OwnedRelatedOnlyFieldListFilter(RelatedOnlyFieldListFilter):
    """Related objects present in the (scoped) changelist and visible to the user.

    Presence alone is not enough: a row may point at another owner's object (a
    superuser can put one marketer's contact into another's list), and that
    object's name must not show up in the filter.
    """

    def field_choices(self, field, request, model_admin):
        present = model_admin.get_queryset(request).distinct().values_list(f"{self.field_path}__pk", flat=True)
        visible = scope_to_user(field.related_model._default_manager.all(), request.user)
        ordering = self.field_admin_ordering(field, request, model_admin)
        return field.get_choices(
            include_blank=False,
            limit_choices_to={"pk__in": visible.filter(pk__in=present).values("pk")},
            ordering=ordering,
        )


class OwnerScopedFormFieldsMixin:
    """Limit every relation choice (FK and M2M) to what the user owns."""

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        formfield = super().formfield_for_foreignkey(db_field, request, **kwargs)
        self._scope_choices(formfield, request)
        return formfield

    def formfield_for_manytomany(self, db_field, request, **kwargs):
        formfield = super().formfield_for_manytomany(db_field, request, **kwargs)
        self._scope_choices(formfield, request)
        return formfield

    def _scope_choices(self, formfield, request):
        if formfield is not None and hasattr(formfield, "queryset"):
            formfield.queryset = scope_to_user(formfield.queryset, request.user)


class OwnedModelAdmin(OwnerScopedFormFieldsMixin, admin.ModelAdmin):
    owner_field = "owner"

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        return scope_to_user(super().get_queryset(request), request.user)

    def get_exclude(self, request, obj=None):
        exclude = list(super().get_exclude(request, obj) or [])
        if not request.user.is_superuser and self._owns_directly():
            exclude.append(self.owner_field)
        return exclude

    def get_fieldsets(self, request: HttpRequest, obj: Any = None) -> "_FieldsetSpec":
        fieldsets = super().get_fieldsets(request, obj)
        if not self.fieldsets:
            return fieldsets  # derived from the form already
        # Declared fieldsets name the owner, which a marketer's form lacks (see
        # get_exclude); keep only what the form has. fields=None, as Django's own
        # get_fields passes, keeps get_form from calling get_fieldsets again: a
        # get_form(request, obj) call here would recurse forever (RecursionError
        # on every add and change page).
        on_form = set(self.get_form(request, obj, fields=None).base_fields)
        on_page = on_form | set(self.get_readonly_fields(request, obj))
        declared = {
            name
            for _, opts in fieldsets
            for item in opts.get("fields", ())
            for name in (item if isinstance(item, (list, tuple)) else (item,))
        }
        return without_fields(fieldsets, declared - on_page)

    def get_ordering(self, request):
        # Admins here annotate counts, and Django drops Meta.ordering from GROUP BY
        # queries: autocomplete then pages through unordered rows. Be explicit.
        return super().get_ordering(request) or self.model._meta.ordering

    def get_list_filter(self, request):
        return [self._scoped_filter(item) for item in super().get_list_filter(request)]

    def _scoped_filter(self, item):
        if isinstance(item, str):
            try:
                field = self.model._meta.get_field(item)
            except FieldDoesNotExist:
                return item
            if field.is_relation:
                # Only related objects present in the (scoped) changelist, never another owner's names.
                return (item, OwnedRelatedOnlyFieldListFilter)
        return item

    def _owns_directly(self):
        try:
            self.model._meta.get_field(self.owner_field)
        except FieldDoesNotExist:
            return False
        return True

    def get_form(self, request, obj=None, **kwargs):
        form_class = super().get_form(request, obj, **kwargs)
        if not self._owns_directly() or request.user.is_superuser:
            return form_class
        owner_field = self.owner_field

        class OwnedForm(form_class):
            # The owner is set before model validation, so per-owner unique
            # constraints are checked on the form instead of failing in the database.
            def _post_clean(self):
                if getattr(self.instance, f"{owner_field}_id", None) is None:
                    setattr(self.instance, owner_field, request.user)
                super()._post_clean()

            def _get_validation_exclusions(self):
                exclude = super()._get_validation_exclusions()
                exclude.discard(owner_field)
                return exclude

        OwnedForm.__name__ = form_class.__name__
        return OwnedForm

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        if self._owns_directly() and getattr(obj, f"{self.owner_field}_id", None) is None:
            setattr(obj, self.owner_field, request.user)
        super().save_model(request, obj, form, change)

    def get_object(self, request: HttpRequest, object_id: str, from_field: str | None = None) -> Any:
        obj = super().get_object(request, object_id, from_field)
        if obj is None:
            # Raised here, before the views' permission checks: otherwise a read-only
            # admin (emails, links, events) answers 403 on another owner's delete URL
            # instead of the 404 a missing object gets.
            raise Http404("No such object.")
        return obj

    def _get_obj_does_not_exist_redirect(self, request, opts, object_id):
        # Another owner's object must be indistinguishable from a missing one.
        raise Http404("No such object.")


class OwnedInlineMixin(OwnerScopedFormFieldsMixin):
    def get_queryset(self, request):
        return scope_to_user(super().get_queryset(request), request.user)


class FormFieldAutocompleteJsonView(AutocompleteJsonView):
    """The admin's autocomplete, answering only for a relation a form can hold: a foreign key or
    many-to-many field of the source model.

    Django looks the source field up by name, reverse relations included (a contact's `lists`, its
    `emails`), then fails on them with an AttributeError: a 500. They are refused as every other
    unsuitable source is (403). The results are the remote admin's `get_queryset`, so the caller's own.
    """

    def process_request(self, request):
        term, model_admin, source_field, to_field_name = super().process_request(request)
        if isinstance(source_field, ForeignObjectRel):
            raise PermissionDenied
        return term, model_admin, source_field, to_field_name


class ReadOnlyAdminMixin:
    """The ledger is written by the sending engine only."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
