"""Reads of the customer data: the list page, the 360 parts and the home figures.

Every query here stays cheap at a million customers: it uses an index, a LIMIT, or both.
"""

from __future__ import annotations

import datetime as dt
import enum
import re
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING

from django.db import connection
from django.db.models import Count, Prefetch, Q, QuerySet, Sum

from customers.models import (
    Customer,
    CustomerMetrics,
    CustomerTag,
    Event,
    ImportRun,
    Order,
    OrderStatus,
    Tag,
)

if TYPE_CHECKING:
    from customers.filters import CustomerFilterSet

PAGE_SIZE = 25
# Rows we count exactly; past it the page says "10,000+". COUNT over a LIMITed subquery stops
# reading after this many index entries, where a plain COUNT(*) would read the whole table.
COUNT_CAP = 10_000
# LIMIT/OFFSET gets slower with the offset; nobody pages through 400 pages, they filter.
MAX_PAGE = COUNT_CAP // PAGE_SIZE
MAX_KNOWN_CITIES = 500  # a guard on the city walk below, far above any real shop's city list
RECENT_ORDERS = 20
RECENT_EVENTS = 50
RECENT_IMPORTS = 5
TAG_SUGGESTIONS = 200

_PHONE_JUNK = re.compile(r"[\s\-().]")
_CHINA_MOBILE = re.compile(r"1\d{10}")
_E164 = re.compile(r"\+\d{6,15}")


class CountKind(enum.Enum):
    EXACT = "exact"
    AT_LEAST = "at_least"  # more than the cap: shown as "10,000+"
    ABOUT = "about"  # the planner's estimate, for the unfiltered list on PostgreSQL


@dataclass(frozen=True)
class RowCount:
    value: int
    kind: CountKind

    @property
    def is_exact(self) -> bool:
        return self.kind is CountKind.EXACT

    @property
    def is_at_least(self) -> bool:
        return self.kind is CountKind.AT_LEAST

    @property
    def is_about(self) -> bool:
        return self.kind is CountKind.ABOUT


@dataclass(frozen=True)
class CustomerPage:
    customers: list[Customer]
    number: int
    page_size: int
    has_previous: bool
    has_next: bool
    count: RowCount

    @property
    def first_index(self) -> int:
        return (self.number - 1) * self.page_size + 1 if self.customers else 0

    @property
    def last_index(self) -> int:
        return (self.number - 1) * self.page_size + len(self.customers)

    @property
    def last_page(self) -> int | None:
        """Known only when the count is exact."""
        if not self.count.is_exact:
            return None
        return max(1, -(-self.count.value // self.page_size))


def normalize_phone_query(text: str) -> str | None:
    """The E.164 form of a typed phone number (13812341234, 86 138..., +86 138-1234-1234)."""
    compact = _PHONE_JUNK.sub("", text)
    if compact.startswith("00"):
        compact = "+" + compact[2:]
    if _CHINA_MOBILE.fullmatch(compact):
        return "+86" + compact
    if compact.startswith("86") and _CHINA_MOBILE.fullmatch(compact[2:]):
        return "+" + compact
    if _E164.fullmatch(compact):
        return compact
    return None


def search_customers(queryset: QuerySet[Customer], text: str) -> QuerySet[Customer]:
    """Exact external id, exact phone or name prefix: each an index lookup, never a scan."""
    text = text.strip()
    if not text:
        return queryset
    condition = Q(external_id=text)
    phone = normalize_phone_query(text)
    if phone:
        condition |= Q(phone=phone)
    condition |= _name_prefix(text)
    return queryset.filter(condition)


def _name_prefix(text: str) -> Q:
    # LIKE 'x%' cannot use a plain b-tree index on PostgreSQL outside the C collation, a range
    # can. The upper bound differs by collation: U+FFFF sorts last under ICU (CLDR reserves it
    # for this), U+10FFFF sorts last in code-point order (C, SQLite); the two ranges together
    # cover both, and startswith drops whatever a collation sorts in without the prefix.
    in_range = Q(name__gte=text, name__lt=text + "\uffff") | Q(
        name__gte=text + "\uffff", name__lt=text + "\U0010ffff"
    )
    return in_range & Q(name__startswith=text)


def list_known_cities() -> list[str]:
    """The distinct non-empty cities, by a walk of the (city, registered_at) index.

    A recursive query jumps from one city to the next (one index probe each), so this costs
    the number of cities, not the number of customers, on SQLite and PostgreSQL alike.
    """
    table = connection.ops.quote_name(Customer._meta.db_table)
    sql = f"""
        WITH RECURSIVE cities(city, depth) AS (
            SELECT (SELECT MIN(city) FROM {table} WHERE city > ''), 1
            UNION ALL
            SELECT (SELECT MIN(c.city) FROM {table} c WHERE c.city > cities.city), depth + 1
            FROM cities WHERE cities.city IS NOT NULL AND depth < %s
        )
        SELECT city FROM cities WHERE city IS NOT NULL
    """  # noqa: S608 - the table name comes from the model, the limit is a parameter
    with connection.cursor() as cursor:
        cursor.execute(sql, [MAX_KNOWN_CITIES])
        return [row[0] for row in cursor.fetchall()]


def list_tag_names(*, limit: int = TAG_SUGGESTIONS) -> list[str]:
    return list(Tag.objects.order_by("name").values_list("name", flat=True)[:limit])


def estimate_customer_rows() -> int | None:
    """PostgreSQL's planner estimate of the table's rows (free), or None where there is none."""
    if connection.vendor != "postgresql":
        return None
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT reltuples::bigint FROM pg_class WHERE oid = %s::regclass",
            [Customer._meta.db_table],
        )
        row = cursor.fetchone()
    # -1 means never analysed (PostgreSQL 14+); 0 may mean the same on older versions.
    if row is None or row[0] is None or row[0] <= 0:
        return None
    return int(row[0])


def count_customers(
    queryset: QuerySet[Customer], *, is_filtered: bool, cap: int = COUNT_CAP
) -> RowCount:
    if not is_filtered:
        estimate = estimate_customer_rows()
        # Below the cap an exact count is cheap and better than an estimate.
        if estimate is not None and estimate > cap:
            return RowCount(value=estimate, kind=CountKind.ABOUT)
    counted = queryset.order_by().values("pk")[: cap + 1].count()
    if counted > cap:
        return RowCount(value=cap, kind=CountKind.AT_LEAST)
    return RowCount(value=counted, kind=CountKind.EXACT)


def list_customers(
    *,
    filterset: CustomerFilterSet,
    page_number: int,
    page_size: int = PAGE_SIZE,
    count_cap: int = COUNT_CAP,
) -> CustomerPage:
    """One page of the filtered, sorted customers with their tags (three queries)."""
    if not filterset.is_valid():
        return CustomerPage(
            customers=[],
            number=1,
            page_size=page_size,
            has_previous=False,
            has_next=False,
            count=RowCount(value=0, kind=CountKind.EXACT),
        )
    queryset = filterset.qs
    offset = (page_number - 1) * page_size
    # One row past the page tells whether there is a next page without counting.
    rows = list(
        queryset.prefetch_related(
            Prefetch(
                "customer_tags",
                queryset=CustomerTag.objects.select_related("tag").order_by("tag__name"),
            )
        )[offset : offset + page_size + 1]
    )
    return CustomerPage(
        customers=rows[:page_size],
        number=page_number,
        page_size=page_size,
        has_previous=page_number > 1,
        has_next=len(rows) > page_size,
        count=count_customers(queryset, is_filtered=filterset.has_filters, cap=count_cap),
    )


def get_customer(*, customer_id: int) -> Customer | None:
    return Customer.objects.filter(pk=customer_id).first()


def customer_exists(*, customer_id: int) -> bool:
    return Customer.objects.filter(pk=customer_id).exists()


def list_customer_tags(*, customer_id: int) -> list[CustomerTag]:
    return list(
        CustomerTag.objects.filter(customer_id=customer_id)
        .select_related("tag")
        .order_by("tag__name")
    )


@dataclass(frozen=True)
class OrderTotals:
    orders_count: int
    paid_spend: Decimal


def get_order_totals(*, customer_id: int) -> OrderTotals:
    totals = Order.objects.filter(customer_id=customer_id).aggregate(
        orders_count=Count("pk"),
        paid_spend=Sum("amount", filter=Q(status=OrderStatus.PAID)),
    )
    return OrderTotals(
        orders_count=totals["orders_count"],
        paid_spend=totals["paid_spend"] or Decimal("0.00"),
    )


def list_recent_orders(*, customer_id: int, limit: int = RECENT_ORDERS) -> list[Order]:
    return list(Order.objects.filter(customer_id=customer_id).order_by("-placed_at", "-pk")[:limit])


def list_recent_events(*, customer_id: int, limit: int = RECENT_EVENTS) -> list[Event]:
    return list(
        Event.objects.filter(customer_id=customer_id).order_by("-occurred_at", "-pk")[:limit]
    )


@dataclass(frozen=True)
class CustomerProfile:
    """What the customers app knows about one customer, for the 360 page."""

    customer: Customer
    tags: list[CustomerTag]
    order_totals: OrderTotals
    recent_orders: list[Order]
    recent_events: list[Event]


def get_customer_profile(*, customer_id: int) -> CustomerProfile | None:
    customer = get_customer(customer_id=customer_id)
    if customer is None:
        return None
    return CustomerProfile(
        customer=customer,
        tags=list_customer_tags(customer_id=customer_id),
        order_totals=get_order_totals(customer_id=customer_id),
        recent_orders=list_recent_orders(customer_id=customer_id),
        recent_events=list_recent_events(customer_id=customer_id),
    )


@dataclass(frozen=True)
class DashboardFigures:
    customers: RowCount
    orders_30d: int
    revenue_30d: Decimal
    events_7d: int
    latest_imports: list[ImportRun]


def get_dashboard_figures(*, now: dt.datetime) -> DashboardFigures:
    """The home page's figures: four aggregates over indexed ranges and the latest imports."""
    orders = Order.objects.filter(placed_at__gt=now - dt.timedelta(days=30)).aggregate(
        count=Count("pk"),
        revenue=Sum("amount", filter=Q(status=OrderStatus.PAID)),
    )
    return DashboardFigures(
        customers=count_customers(Customer.objects.all(), is_filtered=False),
        orders_30d=orders["count"],
        revenue_30d=orders["revenue"] or Decimal("0.00"),
        events_7d=Event.objects.filter(occurred_at__gt=now - dt.timedelta(days=7)).count(),
        latest_imports=list_recent_import_runs(limit=RECENT_IMPORTS),
    )


def get_customer_metrics(customer_id: int) -> CustomerMetrics | None:
    """The customer's metrics row from the last recompute (None before the first one)."""
    return CustomerMetrics.objects.filter(pk=customer_id).first()


def list_recent_import_runs(*, limit: int) -> list[ImportRun]:
    """The latest runs with who started them; their error lists are left in the database."""
    return list(
        ImportRun.objects.select_related("created_by")
        .defer("errors", "stored_path")
        .order_by("-created_at", "-pk")[:limit]
    )
