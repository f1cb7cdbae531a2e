"""The Django admin for the customer data, made to stay usable on tables of millions of rows.

Big tables (customers, customer tags, orders, events): no full-table COUNT (an estimate on
PostgreSQL instead), searches that hit an index, no date_hierarchy (its year list scans the
table), raw-id widgets for customers.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.paginator import Paginator
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.functional import cached_property
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _

from customers.models import ApiKey, Customer, CustomerTag, Event, ImportRun, Order, Tag
from customers.queries import (
    estimate_customer_rows,
    list_known_cities,
    normalize_phone_query,
    search_customers,
)
from customers.services import clean_api_key_name, create_api_key, revoke_api_key
from customers.templatetags.customer_contact import can_view_contact, mask_email, mask_phone

ESTIMATE_FROM = 100_000  # below this many rows an exact COUNT is quick enough
# Columns and fields shown masked to a user without the contact permission.
MASKED = {"phone": "masked_phone", "email": "masked_email"}


class EstimatedCountPaginator(Paginator):
    """Counts the unfiltered customer table from the planner's estimate (PostgreSQL)."""

    @cached_property
    def count(self) -> int:
        queryset = self.object_list
        if (
            isinstance(queryset, QuerySet)
            and queryset.model is Customer
            and not queryset.query.where
        ):
            estimate = estimate_customer_rows()
            if estimate is not None and estimate >= ESTIMATE_FROM:
                return estimate
        return super().count


class CityFilter(admin.SimpleListFilter):
    title = _("city")
    parameter_name = "city"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        # The index walk of the list page, not SELECT DISTINCT over every customer.
        return [(city, city) for city in list_known_cities()]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        value = self.value()
        return queryset.filter(city=value) if value else queryset


class CustomerTagInline(admin.TabularInline):
    model = CustomerTag
    extra = 0
    autocomplete_fields = ["tag"]
    readonly_fields = ["created_at"]


@admin.register(Customer)
class CustomerAdmin(admin.ModelAdmin):
    list_display = [
        "external_id",
        "name",
        "phone",
        "email",
        "city",
        "channel",
        "registered_at",
        "last_seen_at",
    ]
    list_filter = [CityFilter, "channel", "gender", "sms_opt_in", "email_opt_in"]
    # The box searches through queries.search_customers (exact id, exact phone, name prefix).
    search_fields = ["external_id", "phone", "name"]
    search_help_text = _(
        "External id, phone (13812341234 or +8613812341234) or the start of a name"
    )
    ordering = ["-registered_at"]
    readonly_fields = ["created_at", "updated_at"]
    inlines = [CustomerTagInline]
    show_full_result_count = False
    paginator = EstimatedCountPaginator
    fieldsets = [
        (None, {"fields": ["external_id", "name", "gender", "birth_date", "city", "channel"]}),
        (_("Contact"), {"fields": ["phone", "email", "wechat_openid"]}),
        (
            _("Consent"),
            {
                "fields": [
                    "sms_opt_in",
                    "email_opt_in",
                    "push_opt_in",
                    "wechat_opt_in",
                    "unsubscribed_at",
                ]
            },
        ),
        (
            _("Activity"),
            {"fields": ["registered_at", "last_seen_at", "attributes", "created_at", "updated_at"]},
        ),
    ]

    # Admins hold the contact permission; anyone else who reaches the admin sees masks only,
    # and cannot probe numbers through the search box either.
    @admin.display(description=_("phone"))
    def masked_phone(self, customer: Customer) -> str:
        return mask_phone(customer.phone)

    @admin.display(description=_("e-mail"))
    def masked_email(self, customer: Customer) -> str:
        return mask_email(customer.email)

    def get_list_display(self, request: HttpRequest) -> Any:
        if can_view_contact(request.user):
            return self.list_display
        return [MASKED.get(str(name), name) for name in self.list_display]

    def get_fieldsets(self, request: HttpRequest, obj: Customer | None = None) -> Any:
        fieldsets = super().get_fieldsets(request, obj)
        if can_view_contact(request.user):
            return fieldsets
        return [
            (title, {**options, "fields": [MASKED.get(str(f), f) for f in options["fields"]]})
            for title, options in fieldsets
        ]

    def get_readonly_fields(self, request: HttpRequest, obj: Customer | None = None) -> Any:
        fields = list(super().get_readonly_fields(request, obj))
        if not can_view_contact(request.user):
            fields += ["masked_phone", "masked_email"]
        return fields

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Customer], search_term: str
    ) -> tuple[QuerySet[Customer], bool]:
        term = search_term.strip()
        if not term:
            return queryset, False
        if not can_view_contact(request.user) and normalize_phone_query(term):
            # Without the permission a phone number finds nobody, as if it were a name.
            return queryset.filter(external_id=term), False
        return search_customers(queryset, term), False


@admin.register(Tag)
class TagAdmin(admin.ModelAdmin):
    list_display = ["name", "description", "created_at"]
    search_fields = ["name"]
    readonly_fields = ["created_at"]


@admin.register(CustomerTag)
class CustomerTagAdmin(admin.ModelAdmin):
    list_display = ["customer", "tag", "source", "created_at"]
    list_filter = ["source", "tag"]
    list_select_related = ["customer", "tag"]
    raw_id_fields = ["customer"]
    autocomplete_fields = ["tag"]
    search_fields = ["=customer__external_id", "=tag__name"]
    readonly_fields = ["created_at"]
    show_full_result_count = False


@admin.register(Order)
class OrderAdmin(admin.ModelAdmin):
    list_display = [
        "external_id",
        "customer",
        "placed_at",
        "amount",
        "status",
        "channel",
        "category",
    ]
    list_filter = ["status", "placed_at"]
    list_select_related = ["customer"]
    raw_id_fields = ["customer"]
    search_fields = ["=external_id", "=customer__external_id"]
    ordering = ["-placed_at"]
    readonly_fields = ["created_at"]
    show_full_result_count = False


@admin.register(Event)
class EventAdmin(admin.ModelAdmin):
    list_display = ["name", "customer", "occurred_at", "event_id"]
    list_filter = ["occurred_at"]
    list_select_related = ["customer"]
    raw_id_fields = ["customer"]
    search_fields = ["=event_id", "=customer__external_id", "=name"]
    readonly_fields = ["created_at"]
    show_full_result_count = False


class ReadOnlyAdmin(admin.ModelAdmin):
    """Rows written by the application only; the admin shows them."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(ImportRun)
class ImportRunAdmin(ReadOnlyAdmin):
    list_display = [
        "created_at",
        "kind",
        "file_name",
        "status",
        "rows_total",
        "rows_imported",
        "rows_unchanged",
        "rows_rejected",
        "created_by",
        "finished_at",
    ]
    list_filter = ["kind", "status", "is_strict"]
    list_select_related = ["created_by"]
    search_fields = ["file_name"]
    date_hierarchy = "created_at"


class ApiKeyAddForm(forms.ModelForm):
    class Meta:
        model = ApiKey
        fields = ["name"]
        help_texts = {"name": _("The shop or system that will send data with this key.")}

    def clean_name(self) -> str:
        name = clean_api_key_name(self.cleaned_data["name"])
        if ApiKey.objects.filter(name=name).exists():
            raise forms.ValidationError(
                gettext("An API key named “%(name)s” already exists.") % {"name": name},
                code="unique",
            )
        return name


@admin.register(ApiKey)
class ApiKeyAdmin(ReadOnlyAdmin):
    """Keys are made here (the full key is shown once, in a message) and deactivated, never edited.

    Adding and deactivating go through the services, which hold the permission checks too.
    """

    list_display = ["name", "prefix", "is_active", "created_by", "created_at", "last_used_at"]
    list_filter = ["is_active"]
    list_select_related = ["created_by"]
    search_fields = ["name", "=prefix"]
    # The digest is of no use to a person and need not be on screen.
    fields = ["name", "prefix", "is_active", "created_by", "created_at", "last_used_at"]
    actions = ["deactivate_keys"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return admin.ModelAdmin.has_add_permission(self, request)

    def has_revoke_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("customers.change_apikey")

    def get_fields(self, request: HttpRequest, obj: ApiKey | None = None) -> Any:
        return ["name"] if obj is None else self.fields

    def get_form(
        self, request: HttpRequest, obj: ApiKey | None = None, change: bool = False, **kwargs: Any
    ) -> Any:
        if obj is None:
            kwargs["form"] = ApiKeyAddForm
        return super().get_form(request, obj, change=change, **kwargs)

    def save_model(self, request: HttpRequest, obj: ApiKey, form: Any, change: bool) -> None:
        if change:
            return  # keys are never edited; ReadOnlyAdmin already refuses changes
        api_key, key = create_api_key(name=form.cleaned_data["name"], actor=request.user)
        # The admin goes on with obj (its log entry, the redirect): make it the row just created.
        for field in ApiKey._meta.concrete_fields:
            setattr(obj, field.attname, getattr(api_key, field.attname))
        obj._state.adding = False
        messages.warning(
            request,
            gettext(
                "The API key for “%(name)s” is %(key)s — copy it now: it is not stored and will "
                "not be shown again."
            )
            % {"name": api_key.name, "key": key},
        )

    @admin.action(description=_("Deactivate the selected API keys"), permissions=["revoke"])
    def deactivate_keys(self, request: HttpRequest, queryset: QuerySet[ApiKey]) -> None:
        ids = list(queryset.filter(is_active=True).values_list("pk", flat=True))
        for api_key_id in ids:
            revoke_api_key(api_key_id=api_key_id, actor=request.user)
        self.message_user(
            request,
            ngettext(
                "%(count)d API key was deactivated; requests with it are now refused.",
                "%(count)d API keys were deactivated; requests with them are now refused.",
                len(ids),
            )
            % {"count": len(ids)},
            messages.SUCCESS,
        )
