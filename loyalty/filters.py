"""The customer list's filters with the loyalty ones added (console composes the list)."""

from __future__ import annotations

from typing import Any

import django_filters
from django.db.models import Exists, OuterRef, QuerySet
from django.utils.translation import gettext_lazy as _

from customers.filters import DEFAULT_SORT, CustomerFilterSet, order_for
from customers.models import Customer
from loyalty.models import Membership, Tier


class MemberFilterSet(CustomerFilterSet):
    """CustomerFilterSet plus the member's tier; each row brings its membership and tier along
    (one LEFT JOIN), so the tier column costs no query per row."""

    tier = django_filters.ChoiceFilter(
        method="filter_tier", label=_("Tier"), empty_label=_("All tiers")
    )

    def __init__(self, data: Any = None, queryset: QuerySet[Customer] | None = None) -> None:
        if queryset is None:
            queryset = Customer.objects.select_related("membership__tier").order_by(
                *order_for(DEFAULT_SORT)
            )
        super().__init__(data=data, queryset=queryset)
        # Built per request, so the names are in the request's language (Tier.name).
        tiers = list(Tier.objects.order_by("rank").only("pk", "code", "name_zh", "name_en"))
        self._tier_ids = {tier.code: tier.pk for tier in tiers}
        self.filters["tier"].extra["choices"] = [(tier.code, tier.name) for tier in tiers]

    def filter_tier(
        self, queryset: QuerySet[Customer], name: str, value: str
    ) -> QuerySet[Customer]:
        # EXISTS on the (tier, customer) index membership_tier_idx, by the tier's id.
        return queryset.filter(
            Exists(
                Membership.objects.filter(customer_id=OuterRef("pk"), tier_id=self._tier_ids[value])
            )
        )
