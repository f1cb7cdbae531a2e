from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pytest
from django.db import connection
from django.http import QueryDict

from customers.filters import CustomerFilterSet
from customers.models import Customer, ImportRun
from customers.queries import (
    CountKind,
    RowCount,
    count_customers,
    get_customer_profile,
    get_dashboard_figures,
    list_customers,
    list_known_cities,
    normalize_phone_query,
    search_customers,
)
from tests.factories import SHANGHAI

NOW = dt.datetime(2024, 6, 15, 12, 0, tzinfo=SHANGHAI)


@pytest.mark.parametrize(
    ("typed", "expected"),
    [
        ("13812341234", "+8613812341234"),
        ("+8613812341234", "+8613812341234"),
        ("8613812341234", "+8613812341234"),
        ("008613812341234", "+8613812341234"),
        ("138 1234 1234", "+8613812341234"),
        ("138-1234-1234", "+8613812341234"),
        ("+447700900123", "+447700900123"),
        ("张伟", None),
        ("C000123", None),
        ("12345", None),
    ],
    ids=[
        "mobile-without-code",
        "e164",
        "code-without-plus",
        "international-prefix",
        "spaces",
        "dashes",
        "other-country",
        "name",
        "external-id",
        "too-short",
    ],
)
def test_a_typed_phone_number_is_read_as_e164(typed: str, expected: str | None) -> None:
    assert normalize_phone_query(typed) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("13812341234", ["C-PHONE"]),
        ("+8613812341234", ["C-PHONE"]),
        ("C-NAME", ["C-NAME"]),
        ("王", ["C-NAME", "C-NAME2"]),
        ("王小", ["C-NAME"]),
        ("小明", []),
        ("c-name", []),
        ("", ["C-NAME", "C-NAME2", "C-PHONE"]),
    ],
    ids=[
        "phone-national",
        "phone-e164",
        "external-id",
        "name-prefix",
        "longer-name-prefix",
        "middle-of-name-finds-nobody",
        "external-id-is-exact",
        "empty-finds-everyone",
    ],
)
def test_search_matches_exact_phone_exact_external_id_or_name_prefix(
    customer_factory: Any, text: str, expected: list[str]
) -> None:
    customer_factory(external_id="C-PHONE", name="李雷", phone="+8613812341234")
    customer_factory(external_id="C-NAME", name="王小明", phone="+8613900000001")
    customer_factory(external_id="C-NAME2", name="王芳", phone="+8613900000002")

    found = search_customers(Customer.objects.order_by("external_id"), text)

    assert [customer.external_id for customer in found] == expected


def test_known_cities_are_the_distinct_non_empty_cities_in_order(customer_factory: Any) -> None:
    for city in ["上海", "北京", "上海", "", "杭州", "北京"]:
        customer_factory(city=city)

    cities = list_known_cities()

    assert sorted(cities) == ["上海", "北京", "杭州"]
    assert len(cities) == 3


def test_known_cities_of_an_empty_table_are_none(db: None) -> None:
    assert list_known_cities() == []


def test_a_filtered_count_below_the_cap_is_exact(customer_factory: Any) -> None:
    customer_factory.create_batch(3, city="上海")
    customer_factory(city="北京")

    count = count_customers(Customer.objects.filter(city="上海"), is_filtered=True, cap=5)

    assert count == RowCount(value=3, kind=CountKind.EXACT)


def test_a_count_past_the_cap_stops_at_the_cap(customer_factory: Any) -> None:
    customer_factory.create_batch(6)

    count = count_customers(Customer.objects.all(), is_filtered=True, cap=5)

    assert count == RowCount(value=5, kind=CountKind.AT_LEAST)


def test_the_unfiltered_count_counts_when_the_table_has_no_estimate(customer_factory: Any) -> None:
    customer_factory.create_batch(6)

    count = count_customers(Customer.objects.all(), is_filtered=False, cap=5)

    # SQLite has no estimate; PostgreSQL has none for a table never analysed.
    assert count.kind in {CountKind.AT_LEAST, CountKind.ABOUT}
    if connection.vendor == "sqlite":
        assert count == RowCount(value=5, kind=CountKind.AT_LEAST)


@pytest.mark.skipif(connection.vendor != "postgresql", reason="pg_class.reltuples is PostgreSQL's")
def test_the_unfiltered_count_on_postgresql_is_the_planners_estimate(
    customer_factory: Any,
) -> None:
    customer_factory.create_batch(7)
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {Customer._meta.db_table}")

    count = count_customers(Customer.objects.all(), is_filtered=False, cap=5)

    assert count == RowCount(value=7, kind=CountKind.ABOUT)


def test_a_page_of_customers_knows_its_neighbours_without_counting_them(
    customer_factory: Any,
) -> None:
    for day in range(5):
        customer_factory(external_id=f"C{day}", registered_at=NOW - dt.timedelta(days=day))

    page = list_customers(filterset=CustomerFilterSet(data=QueryDict()), page_number=2, page_size=2)

    assert [customer.external_id for customer in page.customers] == ["C2", "C3"]
    assert (page.has_previous, page.has_next) == (True, True)
    assert (page.first_index, page.last_index, page.last_page) == (3, 4, 3)


def test_an_invalid_filter_lists_nobody(customer_factory: Any) -> None:
    customer_factory()

    page = list_customers(filterset=CustomerFilterSet(data=QueryDict("sort=phone")), page_number=1)

    assert page.customers == []
    assert page.count == RowCount(value=0, kind=CountKind.EXACT)


def test_the_profile_totals_count_every_order_and_sum_paid_ones_only(
    customer_factory: Any, order_factory: type
) -> None:
    customer = customer_factory()
    order_factory(customer=customer, amount=Decimal("100.50"))
    order_factory(customer=customer, amount=Decimal("20.00"))
    order_factory(customer=customer, amount=Decimal("999.00"), status="refunded")
    order_factory(amount=Decimal("5.00"))  # someone else's

    profile = get_customer_profile(customer_id=customer.pk)

    assert profile is not None
    assert profile.order_totals.orders_count == 3
    assert profile.order_totals.paid_spend == Decimal("120.50")


def test_the_profile_shows_the_latest_20_orders_and_50_events_newest_first(
    customer_factory: Any, order_factory: type, event_factory: type
) -> None:
    customer = customer_factory()
    for hour in range(22):
        order_factory(
            customer=customer, external_id=f"O{hour:02d}", placed_at=NOW - dt.timedelta(hours=hour)
        )
    for minute in range(52):
        event_factory(
            customer=customer,
            event_id=f"E{minute:02d}",
            occurred_at=NOW - dt.timedelta(minutes=minute),
        )

    profile = get_customer_profile(customer_id=customer.pk)

    assert profile is not None
    assert [order.external_id for order in profile.recent_orders] == [
        f"O{hour:02d}" for hour in range(20)
    ]
    assert [event.event_id for event in profile.recent_events] == [
        f"E{minute:02d}" for minute in range(50)
    ]


def test_there_is_no_profile_of_a_missing_customer(db: None) -> None:
    assert get_customer_profile(customer_id=987654) is None


def test_the_dashboard_counts_orders_and_revenue_of_30_days_and_events_of_7(
    customer_factory: Any,
    order_factory: type,
    event_factory: type,
    make_user: type,
) -> None:
    customer = customer_factory()
    order_factory(customer=customer, placed_at=NOW - dt.timedelta(days=1), amount=Decimal("10"))
    order_factory(
        customer=customer, placed_at=NOW - dt.timedelta(days=29, hours=23), amount=Decimal("5.5")
    )
    order_factory(
        customer=customer,
        placed_at=NOW - dt.timedelta(days=2),
        amount=Decimal("100"),
        status="refunded",
    )
    order_factory(customer=customer, placed_at=NOW - dt.timedelta(days=30), amount=Decimal("1"))
    event_factory(customer=customer, occurred_at=NOW - dt.timedelta(days=6, hours=23))
    event_factory(customer=customer, occurred_at=NOW - dt.timedelta(days=7))
    importer = make_user("Operators", username="importer")
    for number in range(6):
        ImportRun.objects.create(
            kind="orders", file_name=f"orders-{number}.csv", created_by=importer
        )

    figures = get_dashboard_figures(now=NOW)

    assert figures.customers == RowCount(value=1, kind=CountKind.EXACT)
    assert figures.orders_30d == 3
    assert figures.revenue_30d == Decimal("15.50")
    assert figures.events_7d == 1
    assert [run.file_name for run in figures.latest_imports] == [
        f"orders-{number}.csv" for number in (5, 4, 3, 2, 1)
    ]
