"""The customer list's filters; each one is served by an index (see Customer.Meta.indexes)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import django_filters
from django import forms
from django.db.models import Exists, F, OrderBy, OuterRef, QuerySet
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from customers.models import AcquisitionChannel, Customer, CustomerTag
from customers.queries import list_known_cities, list_tag_names, search_customers

DEFAULT_SORT = "-registered_at"
# The whitelist of sortable columns, and the index each order walks. Ties are broken by id so
# that paging never shows a row twice; city sorts as (city, registered_at) to use its index.
SORTS: dict[str, tuple[str, ...]] = {
    "name": ("name",),
    "registered_at": ("registered_at",),
    "city": ("city", "registered_at"),
    "external_id": ("external_id",),
    "last_seen_at": ("last_seen_at",),
}
SORT_CHOICES = [(f"{prefix}{key}", f"{prefix}{key}") for key in SORTS for prefix in ("", "-")]
DATE_INPUT = {"type": "date"}


def order_for(sort: str) -> list[OrderBy]:
    descending = sort.startswith("-")
    fields = (*SORTS[sort.lstrip("-")], "pk")
    # Never-seen customers go last in both directions, on SQLite and PostgreSQL alike.
    return [
        F(name).desc(nulls_last=True) if descending else F(name).asc(nulls_last=True)
        for name in fields
    ]


def _start_of_day(day: dt.date) -> dt.datetime:
    return timezone.make_aware(dt.datetime.combine(day, dt.time.min))


class CustomerFilterForm(forms.Form):
    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        start, end = cleaned.get("registered_from"), cleaned.get("registered_to")
        if start and end and start > end:
            self.add_error(
                "registered_to",
                _("The end date %(end)s is before the start date %(start)s.")
                % {"end": end.isoformat(), "start": start.isoformat()},
            )
        return cleaned


class CustomerFilterSet(django_filters.FilterSet):
    q = django_filters.CharFilter(
        method="filter_search",
        label=_("Search"),
        help_text=_("Name (starts with), phone or external id"),
        widget=forms.TextInput(attrs={"type": "search", "autocomplete": "off"}),
    )
    city = django_filters.ChoiceFilter(label=_("City"), empty_label=_("All cities"))
    channel = django_filters.ChoiceFilter(
        label=_("Channel"), choices=AcquisitionChannel.choices, empty_label=_("All channels")
    )
    tag = django_filters.ChoiceFilter(
        method="filter_tag", label=_("Tag"), empty_label=_("All tags")
    )
    registered_from = django_filters.DateFilter(
        method="filter_registered_from",
        label=_("Registered from"),
        widget=forms.DateInput(attrs=DATE_INPUT, format="%Y-%m-%d"),
    )
    registered_to = django_filters.DateFilter(
        method="filter_registered_to",
        label=_("Registered to"),
        widget=forms.DateInput(attrs=DATE_INPUT, format="%Y-%m-%d"),
    )
    # Later issues add tier (loyalty) and lifecycle (CustomerMetrics) filters here.
    sort = django_filters.ChoiceFilter(
        method="filter_sort",
        label=_("Sort"),
        choices=SORT_CHOICES,
        widget=forms.HiddenInput,
    )

    class Meta:
        model = Customer
        fields: list[str] = []
        form = CustomerFilterForm

    def __init__(self, data: Any = None, queryset: QuerySet[Customer] | None = None) -> None:
        if queryset is None:
            queryset = Customer.objects.order_by(*order_for(DEFAULT_SORT))
        super().__init__(data=data, queryset=queryset)
        # Choices from the data, read once per request (the filters are copied per instance).
        self.filters["city"].extra["choices"] = [(city, city) for city in list_known_cities()]
        self.filters["tag"].extra["choices"] = [(name, name) for name in list_tag_names()]

    @property
    def has_filters(self) -> bool:
        """Whether anything but the order narrows the list (an unfiltered list may estimate)."""
        if not self.is_valid():
            return True
        return any(value for name, value in self.form.cleaned_data.items() if name != "sort")

    @property
    def current_sort(self) -> str:
        if self.is_valid() and self.form.cleaned_data.get("sort"):
            return str(self.form.cleaned_data["sort"])
        return DEFAULT_SORT

    def filter_search(
        self, queryset: QuerySet[Customer], name: str, value: str
    ) -> QuerySet[Customer]:
        return search_customers(queryset, value)

    def filter_tag(self, queryset: QuerySet[Customer], name: str, value: str) -> QuerySet[Customer]:
        # EXISTS on the (tag, customer) index; a join would repeat nothing here but EXISTS
        # keeps the row order and the LIMIT untouched.
        return queryset.filter(
            Exists(CustomerTag.objects.filter(customer_id=OuterRef("pk"), tag__name=value))
        )

    def filter_registered_from(
        self, queryset: QuerySet[Customer], name: str, value: dt.date
    ) -> QuerySet[Customer]:
        return queryset.filter(registered_at__gte=_start_of_day(value))

    def filter_registered_to(
        self, queryset: QuerySet[Customer], name: str, value: dt.date
    ) -> QuerySet[Customer]:
        # Half-open: the whole "to" day counts, in the console's time zone.
        return queryset.filter(registered_at__lt=_start_of_day(value + dt.timedelta(days=1)))

    def filter_sort(
        self, queryset: QuerySet[Customer], name: str, value: str
    ) -> QuerySet[Customer]:
        return queryset.order_by(*order_for(value))
