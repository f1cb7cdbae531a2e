"""The Django admin for the customer data, made to stay usable on tables of millions of rows.

Big tables (customers, customer tags, orders, events): no full-table COUNT (an estimate on
PostgreSQL instead), searches that hit an index, no date_hierarchy (its year list scans the
table), raw-id widgets for customers.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.core.paginator import Paginator
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.functional import cached_property
from django.utils.translation import gettext_lazy as _

from customers.models import ApiKey, Customer, CustomerTag, Event, ImportRun, Order, Tag
from customers.queries import (
    estimate_customer_rows,
    list_known_cities,
    normalize_phone_query,
    search_customers,
)
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


@admin.register(ApiKey)
class ApiKeyAdmin(ReadOnlyAdmin):
    list_display = ["name", "prefix", "is_active", "created_by", "created_at", "last_used_at"]
    list_filter = ["is_active"]
    list_select_related = ["created_by"]
    search_fields = ["name", "=prefix"]
    # The digest is of no use to a person and need not be on screen.
    exclude = ["digest"]
