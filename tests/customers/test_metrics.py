from __future__ import annotations

import datetime as dt
import io
import json
from collections.abc import Sequence
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, cast

import pytest
from django.core.management import CommandError, call_command
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from rq import Queue, SimpleWorker

from console import queues
from customers.jobs import METRICS_QUEUE, recompute_metrics_job
from customers.metrics import recompute_metrics
from customers.models import Customer, CustomerMetrics, Event, MetricsSettings, Order
from customers.queries import get_customer_metrics
from tests.factories import SHANGHAI, CustomerFactory, EventFactory, OrderFactory

pytestmark = pytest.mark.django_db

AS_OF = dt.datetime(2024, 6, 30, 12, 0, tzinfo=SHANGHAI)
DAY = dt.timedelta(days=1)
LONG_AGO = AS_OF - 1000 * DAY
METRIC_FIELDS = [
    field.name for field in CustomerMetrics._meta.concrete_fields if field.name != "customer"
]

hypothesis_settings = settings(
    database=None,  # the shared checkout must not collect a .hypothesis example database
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def _customer(external_id: str, *, registered_at: dt.datetime = LONG_AGO) -> Customer:
    return cast(Customer, CustomerFactory(external_id=external_id, registered_at=registered_at))


def _order(customer: Customer, amount: str, placed_at: dt.datetime, status: str = "paid") -> Order:
    return cast(
        Order,
        OrderFactory(customer=customer, amount=Decimal(amount), placed_at=placed_at, status=status),
    )


def _event(customer: Customer, name: str, occurred_at: dt.datetime) -> Event:
    return cast(Event, EventFactory(customer=customer, name=name, occurred_at=occurred_at))


def _orders_with_total(customer: Customer, *, count: int, total: str, last_at: dt.datetime) -> None:
    # The last order at last_at, the others a minute apart before it; the first takes the rest.
    cents = int(Decimal(total) * 100)
    share = cents // count
    for number in range(count):
        amount = share + (cents - share * count if number == count - 1 else 0)
        _order(customer, str(Decimal(amount) / 100), last_at - number * dt.timedelta(minutes=1))


def _metrics(customer: Customer) -> CustomerMetrics:
    return CustomerMetrics.objects.get(pk=customer.pk)


def _rows() -> dict[str, dict[str, Any]]:
    return {
        row.pop("customer__external_id"): row
        for row in CustomerMetrics.objects.values("customer__external_id", *METRIC_FIELDS)
    }


# --- orders: counts, sums, windows, dates -------------------------------------------------------


@pytest.mark.parametrize("days", [30, 90, 180, 365], ids=lambda days: f"{days}d")
def test_a_window_counts_orders_after_exactly_n_days_ago_up_to_as_of(days: int) -> None:
    # given
    customer = _customer("C-1")
    window_start = AS_OF - days * DAY
    _order(customer, "1.00", window_start)
    _order(customer, "2.00", window_start + dt.timedelta(seconds=1))
    _order(customer, "4.00", AS_OF)
    _order(customer, "8.00", AS_OF + dt.timedelta(seconds=1))

    # when
    recompute_metrics(as_of=AS_OF)

    # then
    metrics = _metrics(customer)
    assert (getattr(metrics, f"orders_{days}d"), getattr(metrics, f"spend_{days}d")) == (
        2,
        Decimal("6.00"),
    )
    assert (metrics.orders_count, metrics.spend_total) == (3, Decimal("7.00"))
    assert (metrics.first_order_at, metrics.last_order_at) == (window_start, AS_OF)


def test_refunded_orders_and_orders_after_as_of_count_nowhere() -> None:
    # given
    customer = _customer("C-1")
    _order(customer, "100.00", AS_OF - DAY)
    _order(customer, "50.00", AS_OF - 2 * DAY, status="refunded")
    _order(customer, "30.00", AS_OF + dt.timedelta(hours=1))

    # when
    recompute_metrics(as_of=AS_OF)

    # then
    metrics = _metrics(customer)
    assert (
        metrics.orders_count,
        metrics.spend_total,
        metrics.orders_30d,
        metrics.spend_30d,
        metrics.orders_365d,
        metrics.spend_365d,
        metrics.first_order_at,
        metrics.last_order_at,
        metrics.avg_order_value,
        metrics.days_since_last_order,
    ) == (
        1,
        Decimal("100.00"),
        1,
        Decimal("100.00"),
        1,
        Decimal("100.00"),
        AS_OF - DAY,
        AS_OF - DAY,
        Decimal("100.00"),
        1,
    )


@pytest.mark.parametrize(
    ("as_of", "placed_at", "days"),
    [
        # 23:30 in Shanghai is 15:30 UTC: the same UTC date as as_of, the day before locally.
        ("2024-06-30T07:00+08:00", "2024-06-29T23:30+08:00", 1),
        ("2024-06-30T07:00+08:00", "2024-06-30T00:30+08:00", 0),
        # 07:30 in Shanghai is 23:30 UTC the day before: a UTC day apart, the same day locally.
        ("2024-06-30T08:30+08:00", "2024-06-30T07:30+08:00", 0),
        ("2024-06-30T00:00+08:00", "2024-06-29T23:59:59+08:00", 1),
        ("2024-06-30T23:59:59+08:00", "2024-06-30T00:00+08:00", 0),
        ("2024-06-30T00:00+08:00", "2024-03-31T23:59:59+08:00", 91),
    ],
    ids=[
        "local-yesterday-same-utc-date",
        "local-same-day-after-midnight",
        "local-same-day-utc-yesterday",
        "a-second-before-local-midnight",
        "first-and-last-second-of-a-day",
        "ninety-one-local-days",
    ],
)
def test_days_since_last_order_counts_local_dates(as_of: str, placed_at: str, days: int) -> None:
    # given
    customer = _customer("C-1")
    _order(customer, "10.00", dt.datetime.fromisoformat(placed_at))

    # when
    recompute_metrics(as_of=dt.datetime.fromisoformat(as_of))

    # then
    assert _metrics(customer).days_since_last_order == days


@pytest.mark.parametrize(
    ("amounts", "average"),
    [
        (["1.00", "1.01"], "1.01"),
        (["0.01", "0.02"], "0.02"),
        (["0.05", "0.10"], "0.08"),
        (["10.00", "10.00", "10.01"], "10.00"),
        (["10.00", "10.01", "10.01"], "10.01"),
        (["0.00"], "0.00"),
        (["99999.99", "99999.99", "0.01"], "66666.66"),
    ],
    ids=["1.005", "0.015", "0.075", "10.0033", "10.0067", "zero", "66666.663"],
)
def test_average_order_value_rounds_half_up_to_the_fen(amounts: list[str], average: str) -> None:
    # given
    customer = _customer("C-1")
    for number, amount in enumerate(amounts):
        _order(customer, amount, AS_OF - number * DAY)

    # when
    recompute_metrics(as_of=AS_OF)

    # then
    assert _metrics(customer).avg_order_value == Decimal(average)


def test_sums_are_exact_to_the_fen_however_many_small_amounts() -> None:
    # given ten 0.10s, and 500.00 made of thirds: binary floats would miss both by a hair
    small = _customer("C-SMALL")
    for number in range(10):
        _order(small, "0.10", AS_OF - number * dt.timedelta(minutes=1))
    thirds = _customer("C-THIRDS")
    for number, amount in enumerate(["166.67", "166.67", "166.66"]):
        _order(thirds, amount, AS_OF - DAY - number * dt.timedelta(minutes=1))

    # when
    recompute_metrics(as_of=AS_OF)

    # then
    rows = _rows()
    assert (rows["C-SMALL"]["spend_total"], rows["C-SMALL"]["spend_30d"]) == (
        Decimal("1.00"),
        Decimal("1.00"),
    )
    assert (rows["C-THIRDS"]["spend_total"], rows["C-THIRDS"]["value_tier"]) == (
        Decimal("500.00"),
        "high",
    )


def test_a_customer_without_orders_or_activity_gets_a_row_of_zeros_without_rfm() -> None:
    # given
    customer = _customer("C-1")

    # when
    result = recompute_metrics(as_of=AS_OF)

    # then
    assert result.customers == 1
    assert _rows() == {
        "C-1": {
            "orders_count": 0,
            "spend_total": Decimal("0.00"),
            "first_order_at": None,
            "last_order_at": None,
            "days_since_last_order": None,
            "orders_30d": 0,
            "spend_30d": Decimal("0.00"),
            "orders_90d": 0,
            "spend_90d": Decimal("0.00"),
            "orders_180d": 0,
            "spend_180d": Decimal("0.00"),
            "orders_365d": 0,
            "spend_365d": Decimal("0.00"),
            "avg_order_value": None,
            "rfm_r": None,
            "rfm_f": None,
            "rfm_m": None,
            "value_tier": "unclassified",
            "lifecycle_stage": "prospect",
            "silent_level": "",
            "last_active_at": None,
            "computed_as_of": AS_OF,
        }
    }
    assert get_customer_metrics(customer.pk) == _metrics(customer)


def test_get_customer_metrics_is_none_before_the_first_recompute() -> None:
    # given
    customer = _customer("C-1")

    # when
    metrics = get_customer_metrics(customer.pk)

    # then
    assert metrics is None


# --- RFM ---------------------------------------------------------------------------------------

# (days since the last order, order amounts) of seven customers, and their R, F, M scores:
# score = 1 + floor(5 * (rank - 1) / 7), rank by RANK() with the worst first.
RFM_CASES = {
    "A": (100, ["500.00"], (1, 1, 4)),
    "B": (50, ["100.00"], (1, 1, 1)),
    "C": (50, ["100.00"], (1, 1, 1)),
    "D": (20, ["50.00", "50.00"], (3, 3, 1)),
    "E": (10, ["100.00", "100.00", "100.00"], (3, 3, 3)),
    "F": (5, ["50.00", "50.00", "100.00"], (4, 3, 3)),
    "G": (0, ["120.00"] * 5, (5, 5, 5)),
}


def _rfm_customers() -> None:
    for external_id, (days, amounts, _scores) in RFM_CASES.items():
        customer = _customer(external_id)
        for number, amount in enumerate(amounts):
            _order(customer, amount, AS_OF - days * DAY - number * dt.timedelta(minutes=1))


def test_rfm_scores_quintiles_among_buyers_and_ties_share_a_score() -> None:
    # given seven buyers and one customer who never ordered (not counted among the seven)
    _rfm_customers()
    _customer("H")

    # when
    recompute_metrics(as_of=AS_OF)

    # then
    scores = {
        external_id: (row["rfm_r"], row["rfm_f"], row["rfm_m"])
        for external_id, row in _rows().items()
    }
    assert scores == {
        **{external_id: case[2] for external_id, case in RFM_CASES.items()},
        "H": (None, None, None),
    }


def test_a_full_recompute_stores_the_rfm_breakpoints() -> None:
    # given
    _rfm_customers()

    # when
    result = recompute_metrics(as_of=AS_OF)

    # then: the best value of each score below 2, 3, 4 and 5 (days: fewest is best)
    expected = {
        "r": [50, 50, 10, 5],
        "f": [1, 1, 3, 3],
        "m": ["100.00", "100.00", "300.00", "500.00"],
    }
    assert result.rfm_breakpoints == expected
    stored = MetricsSettings.objects.get(pk=1)
    assert stored.rfm_breakpoints == expected
    assert (stored.last_full_run_as_of, stored.last_full_run_customers) == (AS_OF, 7)


def test_everyone_tied_scores_one() -> None:
    # given
    for external_id in ["A", "B", "C"]:
        _order(_customer(external_id), "10.00", AS_OF - DAY)

    # when
    recompute_metrics(as_of=AS_OF)

    # then
    assert {(r["rfm_r"], r["rfm_f"], r["rfm_m"]) for r in _rows().values()} == {(1, 1, 1)}


# --- value tiers -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("days", "count", "total", "tier"),
    [
        (30, 3, "500.00", "high"),
        (0, 9, "9000.00", "high"),
        (31, 3, "500.00", "unclassified"),
        (30, 3, "499.99", "unclassified"),
        (30, 2, "499.99", "potential"),
        (0, 1, "200.00", "potential"),
        (30, 2, "500.00", "unclassified"),
        (30, 1, "199.99", "unclassified"),
        (31, 1, "300.00", "unclassified"),
        (90, 1, "199.99", "low"),
        (400, 1, "0.00", "low"),
        (89, 1, "199.99", "unclassified"),
        (90, 1, "200.00", "unclassified"),
        (90, 2, "100.00", "unclassified"),
    ],
    ids=[
        "high-at-every-threshold",
        "high-well-inside",
        "not-high-at-31-days",
        "not-high-under-500",
        "potential-under-500",
        "potential-at-200",
        "two-orders-of-500-is-neither",
        "not-potential-under-200",
        "not-potential-at-31-days",
        "low-at-90-days",
        "low-long-ago",
        "not-low-at-89-days",
        "not-low-at-200",
        "not-low-with-2-orders",
    ],
)
def test_value_tier_at_its_thresholds(days: int, count: int, total: str, tier: str) -> None:
    # given
    customer = _customer("C-1")
    _orders_with_total(customer, count=count, total=total, last_at=AS_OF - days * DAY)

    # when
    recompute_metrics(as_of=AS_OF)

    # then
    metrics = _metrics(customer)
    assert (metrics.days_since_last_order, metrics.orders_count, metrics.spend_total) == (
        days,
        count,
        Decimal(total),
    )
    assert metrics.value_tier == tier


def test_value_tiers_follow_the_edited_thresholds() -> None:
    # given
    customer = _customer("C-1")
    _orders_with_total(customer, count=2, total="300.00", last_at=AS_OF - 10 * DAY)
    recompute_metrics(as_of=AS_OF)
    before = _metrics(customer).value_tier

    # when
    MetricsSettings.objects.filter(pk=1).update(high_min_orders=2, high_min_spend=Decimal("300.00"))
    recompute_metrics(as_of=AS_OF)

    # then
    assert (before, _metrics(customer).value_tier) == ("potential", "high")


# --- lifecycle ---------------------------------------------------------------------------------


@pytest.mark.parametrize("activity", ["order", "app_open", "view_product"])
@pytest.mark.parametrize(
    ("days", "stage", "level"),
    [
        (0, "active", ""),
        (30, "active", ""),
        (31, "silent", "light"),
        (45, "silent", "light"),
        (46, "silent", "medium"),
        (60, "silent", "medium"),
        (61, "silent", "heavy"),
        (90, "silent", "heavy"),
        (91, "lapsed", ""),
    ],
    ids=lambda value: str(value) if isinstance(value, int) else None,
)
def test_lifecycle_stage_and_silent_level_by_local_days_since_last_activity(
    activity: str, days: int, stage: str, level: str
) -> None:
    # given activity at 00:05 local time, `days` local dates before as_of's (23:55 local)
    customer = _customer("C-1")
    as_of = dt.datetime(2024, 6, 30, 23, 55, tzinfo=SHANGHAI)
    active_at = dt.datetime(2024, 6, 30, 0, 5, tzinfo=SHANGHAI) - days * DAY
    if activity == "order":
        _order(customer, "10.00", active_at)
    else:
        _event(customer, activity, active_at)

    # when
    recompute_metrics(as_of=as_of)

    # then
    metrics = _metrics(customer)
    assert (metrics.lifecycle_stage, metrics.silent_level) == (stage, level)
    assert metrics.last_active_at == active_at


@pytest.mark.parametrize(
    ("registered_before", "active_days_ago", "stage"),
    [
        (7 * DAY, None, "prospect"),
        (7 * DAY - dt.timedelta(seconds=1), None, "new"),
        (dt.timedelta(0), None, "new"),
        (3 * DAY, 0, "new"),
        (3 * DAY, 2, "new"),
        (8 * DAY, None, "prospect"),
        (8 * DAY, 2, "active"),
        (400 * DAY, None, "prospect"),
    ],
    ids=[
        "registered-exactly-7-days-ago",
        "a-second-inside-7-days",
        "registered-at-as-of",
        "new-beats-active",
        "new-beats-active-by-event",
        "never-active-after-8-days",
        "active-after-8-days",
        "never-active-long-ago",
    ],
)
def test_new_comes_first_for_seven_days_then_prospect_until_active(
    registered_before: dt.timedelta, active_days_ago: int | None, stage: str
) -> None:
    # given
    customer = _customer("C-1", registered_at=AS_OF - registered_before)
    if active_days_ago == 0:
        _order(customer, "10.00", AS_OF)
    elif active_days_ago is not None:
        _event(customer, "app_open", AS_OF - active_days_ago * DAY)

    # when
    recompute_metrics(as_of=AS_OF)

    # then
    metrics = _metrics(customer)
    assert (metrics.lifecycle_stage, metrics.silent_level) == (stage, "")


def test_other_events_and_activity_after_as_of_do_not_count() -> None:
    # given
    customer = _customer("C-1")
    _event(customer, "add_to_cart", AS_OF - DAY)
    _event(customer, "app_open", AS_OF + dt.timedelta(seconds=1))
    _order(customer, "10.00", AS_OF + dt.timedelta(seconds=1))

    # when
    recompute_metrics(as_of=AS_OF)

    # then
    metrics = _metrics(customer)
    assert (metrics.lifecycle_stage, metrics.last_active_at, metrics.orders_count) == (
        "prospect",
        None,
        0,
    )


def test_last_active_at_is_the_later_of_the_last_order_and_the_last_activity_event() -> None:
    # given
    by_event = _customer("C-EVENT")
    _order(by_event, "10.00", AS_OF - 40 * DAY)
    _event(by_event, "view_product", AS_OF - 10 * DAY)
    _event(by_event, "app_open", AS_OF - 50 * DAY)
    by_order = _customer("C-ORDER")
    _order(by_order, "10.00", AS_OF - 35 * DAY)
    _event(by_order, "app_open", AS_OF - 36 * DAY)

    # when
    recompute_metrics(as_of=AS_OF)

    # then
    rows = _rows()
    assert {
        key: (r["last_active_at"], r["lifecycle_stage"], r["silent_level"])
        for key, r in rows.items()
    } == {
        "C-EVENT": (AS_OF - 10 * DAY, "active", ""),
        "C-ORDER": (AS_OF - 35 * DAY, "silent", "light"),
    }
    assert rows["C-EVENT"]["days_since_last_order"] == 40


# --- the recompute itself ----------------------------------------------------------------------


def test_the_recompute_is_a_fixed_number_of_statements_however_many_customers() -> None:
    # given
    def make(prefix: str, count: int) -> None:
        for number in range(count):
            customer = _customer(f"{prefix}-{number}")
            _order(customer, "10.00", AS_OF - number * DAY)
            _event(customer, "app_open", AS_OF - number * DAY)

    make("A", 3)
    recompute_metrics(as_of=AS_OF)  # the first one also creates the settings row
    with CaptureQueriesContext(connection) as with_3:
        recompute_metrics(as_of=AS_OF)
    make("B", 30)

    # when
    with CaptureQueriesContext(connection) as with_33:
        result = recompute_metrics(as_of=AS_OF)

    # then
    assert result.customers == 33
    assert len(with_33) == len(with_3)
    assert CustomerMetrics.objects.count() == 33


def test_a_second_recompute_overwrites_every_row_with_the_new_as_of() -> None:
    # given
    customer = _customer("C-1")
    _order(customer, "10.00", AS_OF - 20 * DAY)
    recompute_metrics(as_of=AS_OF)

    # when
    later = AS_OF + 15 * DAY
    result = recompute_metrics(as_of=later)

    # then
    metrics = _metrics(customer)
    assert result.customers == 1
    assert CustomerMetrics.objects.count() == 1
    assert (
        metrics.computed_as_of,
        metrics.days_since_last_order,
        metrics.orders_30d,
        metrics.lifecycle_stage,
        metrics.silent_level,
    ) == (later, 35, 0, "silent", "light")


def test_a_naive_as_of_is_refused() -> None:
    # given
    naive = dt.datetime(2024, 6, 30, 12, 0)  # noqa: DTZ001 - the point of the test

    # when / then
    with pytest.raises(ValueError, match="as_of must be an aware datetime"):
        recompute_metrics(as_of=naive)


def test_the_recompute_counts_stages_and_tiers() -> None:
    # given
    _customer("NEW", registered_at=AS_OF - DAY)
    _customer("PROSPECT")
    _orders_with_total(_customer("HIGH"), count=3, total="900.00", last_at=AS_OF - DAY)
    _order(_customer("LOW"), "50.00", AS_OF - 100 * DAY)

    # when
    result = recompute_metrics(as_of=AS_OF)

    # then
    assert (result.is_full, result.customers) == (True, 4)
    assert result.lifecycle_stages == {
        "new": 1,
        "active": 1,
        "silent": 0,
        "lapsed": 1,
        "prospect": 1,
    }
    assert result.value_tiers == {"high": 1, "potential": 0, "low": 1, "unclassified": 2}


# --- incremental -------------------------------------------------------------------------------


def test_an_incremental_recompute_rewrites_only_the_customers_given() -> None:
    # given
    _rfm_customers()
    recompute_metrics(as_of=AS_OF)
    before = _rows()
    b = Customer.objects.get(external_id="B")
    c = Customer.objects.get(external_id="C")
    _order(b, "1000.00", AS_OF - DAY)
    _order(c, "1000.00", AS_OF - DAY)
    newcomer = _customer("N")
    _order(newcomer, "1.00", AS_OF - 60 * DAY)

    # when
    result = recompute_metrics(as_of=AS_OF, customer_ids=[b.pk, newcomer.pk, b.pk])

    # then
    after = _rows()
    assert (result.is_full, result.customers) == (False, 2)
    assert after["C"] == before["C"]
    assert (after["B"]["orders_count"], after["B"]["spend_total"]) == (2, Decimal("1100.00"))
    # B: 1 day beats the 5-day breakpoint, 2 orders reach only the 1-order ones, 1100 > 500.
    assert (after["B"]["rfm_r"], after["B"]["rfm_f"], after["B"]["rfm_m"]) == (5, 3, 5)
    assert (after["N"]["rfm_r"], after["N"]["rfm_f"], after["N"]["rfm_m"]) == (1, 1, 1)


def test_an_incremental_recompute_before_any_full_one_recomputes_everyone() -> None:
    # given
    first = _customer("C-1")
    _customer("C-2")

    # when
    result = recompute_metrics(as_of=AS_OF, customer_ids=[first.pk])

    # then
    assert (result.is_full, result.customers) == (True, 2)
    assert set(_rows()) == {"C-1", "C-2"}


def test_an_incremental_recompute_of_no_customers_writes_nothing() -> None:
    # given
    _customer("C-1")
    recompute_metrics(as_of=AS_OF)

    # when
    result = recompute_metrics(as_of=AS_OF + DAY, customer_ids=[])

    # then
    assert (result.is_full, result.customers) == (False, 0)
    assert _rows()["C-1"]["computed_as_of"] == AS_OF


# --- against a plain Python computation of the definitions -------------------------------------


def _local_date(moment: dt.datetime) -> dt.date:
    return timezone.localtime(moment).date()


def _rank_scores(values: dict[str, Any]) -> dict[str, int]:
    """1 + floor(5 * (rank - 1) / n), rank = 1 + how many are strictly worse (smaller)."""
    n = len(values)
    return {
        key: 1 + (5 * sum(1 for other in values.values() if other < value)) // n
        for key, value in values.items()
    }


def _expected_rows(
    customers: Sequence[Customer], as_of: dt.datetime, tiers: MetricsSettings
) -> dict[str, dict[str, Any]]:
    rows: dict[str, dict[str, Any]] = {}
    for customer in customers:
        paid = [
            order
            for order in customer.orders.all()
            if order.status == "paid" and order.placed_at <= as_of
        ]
        active_events = [
            event.occurred_at
            for event in customer.events.all()
            if event.name in ("app_open", "view_product") and event.occurred_at <= as_of
        ]
        spend = sum((order.amount for order in paid), Decimal("0.00"))
        last_order = max((order.placed_at for order in paid), default=None)
        days = None if last_order is None else (_local_date(as_of) - _local_date(last_order)).days
        row: dict[str, Any] = {
            "orders_count": len(paid),
            "spend_total": spend,
            "first_order_at": min((order.placed_at for order in paid), default=None),
            "last_order_at": last_order,
            "days_since_last_order": days,
            "avg_order_value": (
                (spend / len(paid)).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
                if paid
                else None
            ),
        }
        for window in (30, 90, 180, 365):
            inside = [order for order in paid if as_of - window * DAY < order.placed_at]
            row[f"orders_{window}d"] = len(inside)
            row[f"spend_{window}d"] = sum((order.amount for order in inside), Decimal("0.00"))
        if (
            days is not None
            and days <= tiers.high_max_days
            and len(paid) >= tiers.high_min_orders
            and spend >= tiers.high_min_spend
        ):
            tier = "high"
        elif (
            days is not None
            and days <= tiers.potential_max_days
            and tiers.potential_min_orders <= len(paid) <= tiers.potential_max_orders
            and tiers.potential_min_spend <= spend < tiers.potential_max_spend
        ):
            tier = "potential"
        elif (
            days is not None
            and days >= tiers.low_min_days
            and len(paid) <= tiers.low_max_orders
            and spend < tiers.low_max_spend
        ):
            tier = "low"
        else:
            tier = "unclassified"
        last_active = max([*active_events, *([last_order] if last_order else [])], default=None)
        inactive = (
            None if last_active is None else (_local_date(as_of) - _local_date(last_active)).days
        )
        level = ""
        if as_of - 7 * DAY < customer.registered_at:
            stage = "new"
        elif inactive is None:
            stage = "prospect"
        elif inactive <= 30:
            stage = "active"
        elif inactive <= 90:
            stage = "silent"
            level = "light" if inactive <= 45 else "medium" if inactive <= 60 else "heavy"
        else:
            stage = "lapsed"
        row |= {
            "value_tier": tier,
            "lifecycle_stage": stage,
            "silent_level": level,
            "last_active_at": last_active,
            "computed_as_of": as_of,
            "rfm_r": None,
            "rfm_f": None,
            "rfm_m": None,
        }
        rows[customer.external_id] = row
    buyers = {key: row for key, row in rows.items() if row["orders_count"]}
    for name, value in (
        ("rfm_r", lambda row: -row["days_since_last_order"]),
        ("rfm_f", lambda row: row["orders_count"]),
        ("rfm_m", lambda row: row["spend_total"]),
    ):
        for key, score in _rank_scores({k: value(row) for k, row in buyers.items()}).items():
            rows[key][name] = score
    return rows


# Minutes before as_of (12:00 local): anywhere in 400 days, or near a boundary that matters.
BOUNDARY_DAYS = [0, 1, 7, 30, 31, 45, 46, 60, 61, 89, 90, 91, 180, 365]
OFFSET = st.one_of(
    st.integers(min_value=-24 * 60, max_value=400 * 24 * 60),
    st.builds(
        lambda days, minutes: days * 24 * 60 + minutes,
        st.sampled_from(BOUNDARY_DAYS),
        # local midnight is 720 minutes back; the window boundary 0
        st.sampled_from([-1, 0, 1, 719, 720, 721]),
    ),
)
ORDER = st.tuples(
    OFFSET,
    st.sampled_from([0, 1, 5, 19_999, 20_000, 25_000, 49_999, 50_000, 123_456]),  # fen
    st.sampled_from(["paid", "paid", "paid", "refunded"]),
)
EVENT = st.tuples(OFFSET, st.sampled_from(["app_open", "view_product", "add_to_cart"]))
CUSTOMER = st.tuples(
    st.integers(min_value=-60, max_value=20 * 24 * 60),  # registered, minutes before as_of
    st.lists(ORDER, max_size=5),
    st.lists(EVENT, max_size=3),
)


def _make_customers(plans: list[tuple[int, list[Any], list[Any]]]) -> list[Customer]:
    customers = []
    for number, (registered, orders, events) in enumerate(plans):
        customer = _customer(f"H-{number}", registered_at=AS_OF - dt.timedelta(minutes=registered))
        for minutes, fen, status in orders:
            _order(customer, str(Decimal(fen) / 100), AS_OF - dt.timedelta(minutes=minutes), status)
        for minutes, name in events:
            _event(customer, name, AS_OF - dt.timedelta(minutes=minutes))
        customers.append(customer)
    return customers


def _with_facts(customers: list[Customer]) -> list[Customer]:
    return list(
        Customer.objects.filter(pk__in=[c.pk for c in customers]).prefetch_related(
            "orders", "events"
        )
    )


@hypothesis_settings
@given(plans=st.lists(CUSTOMER, max_size=8))
def test_the_sql_equals_a_plain_python_computation_of_the_definitions(
    plans: list[tuple[int, list[Any], list[Any]]],
) -> None:
    with transaction.atomic():
        # given
        customers = _make_customers(plans)

        # when
        recompute_metrics(as_of=AS_OF)

        # then
        expected = _expected_rows(_with_facts(customers), AS_OF, MetricsSettings.objects.get())
        assert _rows() == expected
        transaction.set_rollback(True)


@hypothesis_settings
@given(
    plans=st.lists(CUSTOMER, min_size=1, max_size=8),
    touched=st.lists(st.integers(min_value=0, max_value=7), max_size=4),
    changes=st.lists(st.tuples(st.integers(min_value=0, max_value=7), ORDER), max_size=4),
    shift_minutes=st.sampled_from([0, 1, 720, 24 * 60]),
)
def test_an_incremental_recompute_equals_a_full_one_while_the_breakpoints_hold(
    plans: list[tuple[int, list[Any], list[Any]]],
    touched: list[int],
    changes: list[tuple[int, tuple[int, int, str]]],
    shift_minutes: int,
) -> None:
    with transaction.atomic():
        # given a full recompute, then new orders for some customers and a later as_of
        customers = _make_customers(plans)
        recompute_metrics(as_of=AS_OF)
        untouched_before = _rows()
        changed = {customers[i % len(customers)] for i, _order_plan in changes}
        for i, (minutes, fen, status) in changes:
            placed_at = AS_OF - dt.timedelta(minutes=minutes)
            _order(customers[i % len(customers)], str(Decimal(fen) / 100), placed_at, status)
        ids = {customers[i % len(customers)].pk for i in touched} | {c.pk for c in changed}
        later = AS_OF + dt.timedelta(minutes=shift_minutes)

        # when
        recompute_metrics(as_of=later, customer_ids=ids)
        incremental = _rows()
        breakpoints = MetricsSettings.objects.get().rfm_breakpoints
        recompute_metrics(as_of=later)
        full = _rows()

        # then
        assume(MetricsSettings.objects.get().rfm_breakpoints == breakpoints)
        for customer in customers:
            key = customer.external_id
            if customer.pk in ids:
                assert incremental[key] == full[key]
            else:
                assert incremental[key] == untouched_before[key]
        transaction.set_rollback(True)


# --- the command and the job -------------------------------------------------------------------


def test_the_command_prints_the_result_as_json_and_as_text() -> None:
    # given
    _order(_customer("C-1"), "600.00", AS_OF - DAY)
    _customer("C-2")
    as_json, text = io.StringIO(), io.StringIO()

    # when
    call_command(
        "recompute_metrics", "--as-of", "2024-06-30T04:00:00+00:00", "--json", stdout=as_json
    )
    call_command("recompute_metrics", "--as-of", "2024-06-30T12:00:00", stdout=text)

    # then
    report = json.loads(as_json.getvalue())
    assert isinstance(report.pop("duration_ms"), int)
    assert report == {
        "as_of": "2024-06-30T04:00:00+00:00",
        "is_full": True,
        "customers": 2,
        "lifecycle_stages": {"new": 0, "active": 1, "silent": 0, "lapsed": 0, "prospect": 1},
        "value_tiers": {"high": 0, "potential": 0, "low": 0, "unclassified": 2},
        "rfm_breakpoints": {"r": [1, 1, 1, 1], "f": [1, 1, 1, 1], "m": ["600.00"] * 4},
    }
    lines = text.getvalue().splitlines()
    assert lines[0].startswith(
        "Metrics of all customers recomputed as of 2024-06-30T12:00:00+08:00: 2 rows in "
    )
    assert lines[1:] == [
        "  lifecycle stages: new 0, active 1, silent 0, lapsed 0, prospect 1",
        "  value tiers: high 0, potential 0, low 0, unclassified 2",
    ]
    assert _metrics(Customer.objects.get(external_id="C-1")).computed_as_of == AS_OF


def test_the_command_recomputes_only_the_customer_ids_given() -> None:
    # given
    first = _customer("C-1")
    second = _customer("C-2")
    recompute_metrics(as_of=AS_OF)
    out = io.StringIO()

    # when
    call_command(
        "recompute_metrics",
        "--as-of",
        "2024-07-01T12:00:00+08:00",
        "--customer-ids",
        f"{first.pk}",
        "--json",
        stdout=out,
    )

    # then
    assert (json.loads(out.getvalue())["customers"], json.loads(out.getvalue())["is_full"]) == (
        1,
        False,
    )
    assert (_metrics(first).computed_as_of, _metrics(second).computed_as_of) == (
        AS_OF + DAY,
        AS_OF,
    )


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--as-of", "yesterday"], "--as-of: 'yesterday' is not an ISO date-time"),
        (["--customer-ids", "1,x,2"], "--customer-ids: 'x' is not a list of customer ids"),
        (["--customer-ids", ","], "--customer-ids: nothing is not a list of customer ids"),
    ],
    ids=["bad-date", "bad-id", "no-ids"],
)
def test_the_command_names_a_bad_argument(arguments: list[str], message: str) -> None:
    # when / then
    with pytest.raises(CommandError) as raised:
        call_command("recompute_metrics", *arguments)
    assert str(raised.value) == message
    assert CustomerMetrics.objects.count() == 0


def test_the_job_runs_on_a_worker_of_the_default_queue(
    rq_queues: dict[str, Queue], django_capture_on_commit_callbacks: Any
) -> None:
    # given
    customer = _customer("C-1")
    _order(customer, "10.00", AS_OF - 40 * DAY)
    queue = rq_queues[METRICS_QUEUE]

    # when
    with django_capture_on_commit_callbacks(execute=True):
        queue.enqueue(recompute_metrics_job, AS_OF.isoformat())
    [job] = queue.jobs
    SimpleWorker([queue], connection=queue.connection).work(burst=True)

    # then
    assert METRICS_QUEUE == queues.DEFAULT
    assert (job.func_name, job.args) == (
        "customers.jobs.recompute_metrics_job",
        ("2024-06-30T12:00:00+08:00",),
    )
    job.refresh()
    assert job.is_finished
    assert job.return_value() == {
        "as_of": "2024-06-30T12:00:00+08:00",
        "is_full": True,
        "customers": 1,
        "duration_ms": job.return_value()["duration_ms"],  # type: ignore[index]
        "lifecycle_stages": {"new": 0, "active": 0, "silent": 1, "lapsed": 0, "prospect": 0},
        "value_tiers": {"high": 0, "potential": 0, "low": 0, "unclassified": 1},
        "rfm_breakpoints": {"r": [40] * 4, "f": [1] * 4, "m": ["10.00"] * 4},
    }
    metrics = _metrics(customer)
    assert (metrics.lifecycle_stage, metrics.silent_level, metrics.computed_as_of) == (
        "silent",
        "light",
        AS_OF,
    )
