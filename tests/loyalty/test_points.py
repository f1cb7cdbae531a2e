from __future__ import annotations

import contextlib
import datetime as dt
import io
import json
import threading
import time
from collections.abc import Callable
from decimal import Decimal
from typing import Any, cast

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.management import call_command
from django.db import connection, connections, transaction
from django.db.models import Sum
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rq import SimpleWorker

from customers.ingest.csv_import import import_stream
from customers.models import Customer, Event, Order, OrderStatus
from loyalty.jobs import (
    DEFAULT_QUEUE,
    award_points_job,
    expire_points_job,
    release_pending_points_job,
    reverse_refunded_orders_job,
)
from loyalty.models import (
    BatchKind,
    LoyaltySettings,
    Membership,
    PointsBatch,
    PointsEntry,
    PointsRule,
    Tier,
)
from loyalty.queries import check_points_ledger, get_points_overview, list_points_entries
from loyalty.services.points import (
    InsufficientPoints,
    adjust_points,
    award_points,
    expire_points,
    redeem_points,
    release_pending_points,
    reverse_refunded_orders,
)
from tests.factories import SHANGHAI, CustomerFactory, EventFactory, OrderFactory

is_postgresql = pytest.mark.skipif(
    connection.vendor != "postgresql",
    reason="SQLite lets one writer in at a time (IMMEDIATE transactions): no race to lose",
)


@pytest.fixture(autouse=True)
def english(settings: Any) -> None:
    # The messages asserted here are the English source strings; zh-hans is the default language.
    settings.LANGUAGE_CODE = "en"


def at(
    year: int,
    month: int,
    day: int,
    hour: int = 0,
    minute: int = 0,
    second: int = 0,
    microsecond: int = 0,
) -> dt.datetime:
    return dt.datetime(year, month, day, hour, minute, second, microsecond, tzinfo=SHANGHAI)


def new_customer(**fields: Any) -> Customer:
    return cast(Customer, CustomerFactory(**fields))


def new_order(**fields: Any) -> Order:
    return cast(Order, OrderFactory(**fields))


def new_event(**fields: Any) -> Event:
    return cast(Event, EventFactory(**fields))


def base_tier() -> Tier:
    return Tier.objects.order_by("rank")[0]


def make_loyalty_defaults() -> None:
    # The rows migration 0002 makes; a transactional test elsewhere may have flushed them.
    LoyaltySettings.objects.update_or_create(
        pk=1,
        defaults={
            "return_window_days": 7,
            "points_per_yuan": 100,
            "points_expire": True,
            "expiry_years_after": 1,
        },
    )
    Tier.objects.get_or_create(
        code="normal", defaults={"name_zh": "普通会员", "name_en": "Normal", "rank": 0}
    )
    for event_name, points, daily_cap in [
        ("order", 1, None),
        ("review", 5, None),
        ("share", 10, None),
        ("sign_in", 1, 1),
    ]:
        PointsRule.objects.update_or_create(
            event_name=event_name,
            defaults={
                "points": points,
                "daily_cap": daily_cap,
                "is_active": True,
                "active_since": None,
            },
        )


@pytest.fixture
def defaults(db: None) -> None:
    make_loyalty_defaults()


def make_member(**fields: Any) -> Customer:
    customer = new_customer(registered_at=at(2023, 1, 1), **fields)
    Membership.objects.create(
        customer=customer,
        tier=base_tier(),
        tier_since=at(2023, 1, 1),
        joined_at=at(2023, 1, 1),
    )
    return customer


@pytest.fixture
def member(defaults: None) -> Customer:
    return make_member()


def stored(customer: Customer) -> tuple[int, int]:
    membership = Membership.objects.get(customer=customer)
    return membership.points_balance, membership.pending_points


def ledger(customer: Customer) -> tuple[int, int]:
    entries = PointsEntry.objects.filter(customer=customer)
    return (
        entries.filter(bucket="available").aggregate(total=Sum("delta"))["total"] or 0,
        entries.filter(bucket="pending").aggregate(total=Sum("delta"))["total"] or 0,
    )


def keys_and_deltas(customer: Customer) -> list[tuple[str, str, int]]:
    return list(
        PointsEntry.objects.filter(customer=customer)
        .order_by("effective_at", "-bucket")
        .values_list("idempotency_key", "bucket", "delta")
    )


def earn_available(customer: Customer, points: int, when: dt.datetime) -> None:
    """Available points earned at `when`: an order, awarded and released after its window."""
    new_order(customer=customer, amount=Decimal(points), placed_at=when)
    award_points(now=when + dt.timedelta(minutes=1))
    release_pending_points(now=when + dt.timedelta(days=7))


# Earning


def test_award_points_earns_each_order_and_event_once_when_run_twice(member: Customer) -> None:
    order = new_order(customer=member, amount=Decimal("199.99"), placed_at=at(2025, 3, 10, 10))
    review = new_event(customer=member, name="review", occurred_at=at(2025, 3, 10, 12))
    share = new_event(customer=member, name="share", occurred_at=at(2025, 3, 10, 13))
    new_event(customer=member, name="view_product", occurred_at=at(2025, 3, 10, 14))

    first = award_points(now=at(2025, 3, 11))
    second = award_points(now=at(2025, 3, 11, 1))

    assert (first.entries_count, first.points_total) == (3, 214)
    assert (second.entries_count, second.points_total) == (0, 0)
    assert stored(member) == (15, 199) == ledger(member)
    assert keys_and_deltas(member) == [
        (f"order:{order.pk}:earn", "pending", 199),
        (f"event:{review.pk}:earn", "available", 5),
        (f"event:{share.pk}:earn", "available", 10),
    ]
    earned = PointsEntry.objects.get(idempotency_key=f"order:{order.pk}:earn")
    assert earned.available_at == at(2025, 3, 17, 10)
    assert earned.expires_at == at(2027, 1, 1)
    assert earned.earned_on == dt.date(2025, 3, 10)
    assert list(PointsBatch.objects.values_list("kind", "entries_count", "points_total")) == [
        ("award", 0, 0),
        ("award", 3, 214),
    ]


@pytest.mark.parametrize(
    ("amount", "points"),
    [("0.29", 0), ("0.99", 0), ("1.00", 1), ("28.99", 28), ("100.10", 100), ("12345.67", 12345)],
    ids=["29-fen", "99-fen", "one-yuan", "float-trap", "ten-fen-over", "large"],
)
def test_an_order_earns_the_floor_of_its_amount_in_points(
    member: Customer, amount: str, points: int
) -> None:
    new_order(customer=member, amount=Decimal(amount), placed_at=at(2025, 3, 10, 10))

    award_points(now=at(2025, 3, 11))

    assert stored(member) == (0, points)
    assert PointsEntry.objects.get(customer=member).delta == points


def test_reimporting_an_order_does_not_earn_again(member: Customer) -> None:
    csv_text = (
        "order_id,customer_id,placed_at,amount,status\n"
        f"ORD-1,{member.external_id},2025-03-10T10:00:00+08:00,88.80,paid\n"
    )
    import_stream("orders", io.StringIO(csv_text))
    award_points(now=at(2025, 3, 11))

    report = import_stream("orders", io.StringIO(csv_text))
    again = award_points(now=at(2025, 3, 12))

    assert report.unchanged == 1
    assert again.entries_count == 0
    assert stored(member) == (0, 88) == ledger(member)


def test_only_paid_orders_and_events_at_or_after_the_rule_start_earn(member: Customer) -> None:
    PointsRule.objects.filter(event_name="review").update(active_since=at(2025, 3, 10, 12))
    PointsRule.objects.filter(event_name="share").update(is_active=False)
    new_order(customer=member, amount=Decimal("50"), placed_at=at(2025, 3, 10), status="refunded")
    new_event(customer=member, name="review", occurred_at=at(2025, 3, 10, 11, 59))
    on_time = new_event(customer=member, name="review", occurred_at=at(2025, 3, 10, 12))
    new_event(customer=member, name="share", occurred_at=at(2025, 3, 10, 13))
    new_event(customer=member, name="review", occurred_at=at(2025, 3, 12))

    award_points(now=at(2025, 3, 11))

    assert keys_and_deltas(member) == [(f"event:{on_time.pk}:earn", "available", 5)]


def test_customers_without_a_membership_earn_once_they_have_one(defaults: None) -> None:
    customer = new_customer(registered_at=at(2024, 1, 1))
    new_event(customer=customer, name="share", occurred_at=at(2025, 3, 10))

    before = award_points(now=at(2025, 3, 11))
    Membership.objects.create(
        customer=customer,
        tier=base_tier(),
        tier_since=at(2025, 3, 11),
        joined_at=at(2024, 1, 1),
    )
    after = award_points(now=at(2025, 3, 12))

    assert (before.entries_count, after.entries_count) == (0, 1)
    assert stored(customer) == (10, 0)


def test_sign_in_earns_at_most_its_daily_cap_per_local_day_across_runs(member: Customer) -> None:
    morning = new_event(customer=member, name="sign_in", occurred_at=at(2025, 3, 10, 8))
    again = new_event(customer=member, name="sign_in", occurred_at=at(2025, 3, 10, 9))
    award_points(now=at(2025, 3, 10, 9, 30))
    evening = new_event(customer=member, name="sign_in", occurred_at=at(2025, 3, 10, 20))
    # 00:30 in Shanghai is still the 10th in UTC: a new local day all the same.
    next_day = new_event(customer=member, name="sign_in", occurred_at=at(2025, 3, 11, 0, 30))

    award_points(now=at(2025, 3, 11, 1))

    assert stored(member) == (2, 0) == ledger(member)
    entries = PointsEntry.objects.filter(customer=member).order_by("effective_at")
    assert [(entry.source_id, entry.delta, entry.reason) for entry in entries] == [
        (morning.pk, 1, ""),
        (again.pk, 0, "daily cap"),
        (evening.pk, 0, "daily cap"),
        (next_day.pk, 1, ""),
    ]
    assert [entry.earned_on for entry in entries] == [dt.date(2025, 3, 10)] * 3 + [
        dt.date(2025, 3, 11)
    ]


def test_the_event_that_crosses_the_daily_cap_earns_the_rest_up_to_it(member: Customer) -> None:
    PointsRule.objects.filter(event_name="share").update(daily_cap=25)
    for hour in (9, 10, 11, 12):
        new_event(customer=member, name="share", occurred_at=at(2025, 3, 10, hour))

    award_points(now=at(2025, 3, 10, 23))

    deltas = PointsEntry.objects.filter(customer=member).order_by("effective_at")
    assert [entry.delta for entry in deltas] == [10, 10, 5, 0]
    assert stored(member) == (25, 0)


def test_a_late_event_earlier_in_the_day_finds_the_cap_already_used(member: Customer) -> None:
    new_event(customer=member, name="sign_in", occurred_at=at(2025, 3, 10, 20))
    award_points(now=at(2025, 3, 10, 21))
    late = new_event(customer=member, name="sign_in", occurred_at=at(2025, 3, 10, 7))

    award_points(now=at(2025, 3, 10, 22))

    assert PointsEntry.objects.get(source_id=late.pk).delta == 0
    assert stored(member) == (1, 0)


def test_points_do_not_expire_when_expiry_is_off(member: Customer) -> None:
    LoyaltySettings.objects.filter(pk=1).update(points_expire=False)
    new_event(customer=member, name="review", occurred_at=at(2025, 3, 10))

    award_points(now=at(2025, 3, 11))
    expired = expire_points(now=at(2030, 1, 1))

    assert PointsEntry.objects.get(customer=member).expires_at is None
    assert expired.entries_count == 0
    assert stored(member) == (5, 0)


def test_points_earned_late_in_the_local_year_expire_with_that_year(member: Customer) -> None:
    LoyaltySettings.objects.filter(pk=1).update(expiry_years_after=0)
    # 2025-12-31 23:30 in Shanghai is 15:30 UTC: the local year decides.
    new_event(customer=member, name="review", occurred_at=at(2025, 12, 31, 23, 30))
    new_event(customer=member, name="share", occurred_at=at(2026, 1, 1, 0, 30))

    award_points(now=at(2026, 1, 2))

    expiries = PointsEntry.objects.filter(customer=member).order_by("effective_at")
    assert [entry.expires_at for entry in expiries] == [at(2026, 1, 1), at(2027, 1, 1)]


# Release and refunds


def test_pending_points_become_available_at_exactly_the_end_of_the_return_window(
    member: Customer,
) -> None:
    order = new_order(customer=member, amount=Decimal("300"), placed_at=at(2025, 3, 1, 10))
    award_points(now=at(2025, 3, 2))

    too_early = release_pending_points(now=at(2025, 3, 8, 9, 59, 59, 999999))
    on_time = release_pending_points(now=at(2025, 3, 8, 10))
    again = release_pending_points(now=at(2025, 3, 9))

    assert (too_early.entries_count, on_time.entries_count, again.entries_count) == (0, 2, 0)
    assert on_time.points_total == 300
    assert stored(member) == (300, 0) == ledger(member)
    assert keys_and_deltas(member) == [
        (f"order:{order.pk}:earn", "pending", 300),
        (f"order:{order.pk}:release:pending", "pending", -300),
        (f"order:{order.pk}:release:available", "available", 300),
    ]
    released = PointsEntry.objects.get(idempotency_key=f"order:{order.pk}:release:available")
    assert (released.effective_at, released.expires_at) == (at(2025, 3, 8, 10), at(2027, 1, 1))


def test_a_refund_inside_the_return_window_cancels_the_pending_points(member: Customer) -> None:
    order = new_order(customer=member, amount=Decimal("300"), placed_at=at(2025, 3, 1, 10))
    award_points(now=at(2025, 3, 2))
    Order.objects.filter(pk=order.pk).update(status=OrderStatus.REFUNDED)

    reversed_ = reverse_refunded_orders(now=at(2025, 3, 3))
    released = release_pending_points(now=at(2025, 3, 9))
    reversed_again = reverse_refunded_orders(now=at(2025, 3, 10))

    assert (reversed_.entries_count, reversed_.points_total) == (1, -300)
    assert (released.entries_count, reversed_again.entries_count) == (0, 0)
    assert stored(member) == (0, 0) == ledger(member)
    assert keys_and_deltas(member) == [
        (f"order:{order.pk}:earn", "pending", 300),
        (f"order:{order.pk}:refund", "pending", -300),
    ]


def test_an_order_refunded_after_its_window_is_not_released_even_before_the_reversal(
    member: Customer,
) -> None:
    order = new_order(customer=member, amount=Decimal("300"), placed_at=at(2025, 3, 1, 10))
    award_points(now=at(2025, 3, 2))
    Order.objects.filter(pk=order.pk).update(status=OrderStatus.REFUNDED)

    released = release_pending_points(now=at(2025, 3, 9))
    reverse_refunded_orders(now=at(2025, 3, 9))

    assert released.entries_count == 0
    assert stored(member) == (0, 0)


def test_a_refund_after_the_release_takes_the_points_back_even_below_zero(
    member: Customer,
) -> None:
    order = new_order(customer=member, amount=Decimal("300"), placed_at=at(2025, 3, 1, 10))
    award_points(now=at(2025, 3, 2))
    release_pending_points(now=at(2025, 3, 8, 10))
    redeem_points(customer_id=member.pk, points=200, reason="checkout", now=at(2025, 3, 9))
    Order.objects.filter(pk=order.pk).update(status=OrderStatus.REFUNDED)

    result = reverse_refunded_orders(now=at(2025, 3, 10))

    assert (result.entries_count, result.points_total) == (1, -300)
    assert stored(member) == (-200, 0) == ledger(member)
    refund = PointsEntry.objects.get(idempotency_key=f"order:{order.pk}:refund")
    assert (refund.bucket, refund.kind, refund.effective_at) == (
        "available",
        "order_refund",
        at(2025, 3, 10),
    )


# Redemption


def test_a_redemption_spends_points_at_100_to_the_yuan(member: Customer) -> None:
    earn_available(member, 250, at(2025, 3, 1))

    redemption = redeem_points(
        customer_id=member.pk, points=150, reason="order 8812", now=at(2025, 3, 20)
    )

    assert redemption.yuan == Decimal("1.50")
    assert (redemption.entry.kind, redemption.entry.delta) == ("redeem", -150)
    assert stored(member) == (100, 0) == ledger(member)


def test_a_redemption_larger_than_the_balance_is_refused_and_writes_nothing(
    member: Customer,
) -> None:
    earn_available(member, 100, at(2025, 3, 1))
    redeem_points(customer_id=member.pk, points=80, now=at(2025, 3, 20))

    with pytest.raises(InsufficientPoints) as refused:
        redeem_points(customer_id=member.pk, points=80, now=at(2025, 3, 21))

    assert (refused.value.balance, refused.value.requested) == (20, 80)
    assert refused.value.messages == ["Not enough points: the balance is 20 and 80 were requested."]
    assert stored(member) == (20, 0)
    assert PointsEntry.objects.filter(customer=member, kind="redeem").count() == 1


def test_pending_points_cannot_be_redeemed(member: Customer) -> None:
    new_order(customer=member, amount=Decimal("500"), placed_at=at(2025, 3, 1))
    award_points(now=at(2025, 3, 2))

    with pytest.raises(InsufficientPoints):
        redeem_points(customer_id=member.pk, points=1, now=at(2025, 3, 3))


def test_a_retried_redemption_with_the_same_key_spends_once(member: Customer) -> None:
    earn_available(member, 100, at(2025, 3, 1))

    first = redeem_points(
        customer_id=member.pk, points=60, idempotency_key="checkout-77", now=at(2025, 3, 20)
    )
    retry = redeem_points(
        customer_id=member.pk, points=60, idempotency_key="checkout-77", now=at(2025, 3, 20)
    )

    assert retry.entry.pk == first.entry.pk
    assert stored(member) == (40, 0)


@pytest.mark.parametrize(
    ("points", "field"),
    [(0, "points"), (-5, "points"), (True, "points")],
    ids=["zero", "negative", "boolean"],
)
def test_a_redemption_of_a_bad_amount_names_the_field(
    member: Customer, points: Any, field: str
) -> None:
    with pytest.raises(ValidationError) as error:
        redeem_points(customer_id=member.pk, points=points, now=at(2025, 3, 20))

    assert list(error.value.message_dict) == [field]


def test_a_customer_without_a_membership_cannot_redeem(defaults: None) -> None:
    customer = new_customer()

    with pytest.raises(ValidationError) as error:
        redeem_points(customer_id=customer.pk, points=1, now=at(2025, 3, 20))

    assert error.value.message_dict == {
        "customer_id": [f"Customer {customer.pk} is not a member yet."]
    }


@is_postgresql
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_two_concurrent_redemptions_cannot_overdraw_the_balance() -> None:
    make_loyalty_defaults()
    customer = make_member()
    earn_available(customer, 100, at(2025, 3, 1))
    outcomes: dict[str, object] = {}
    both_waiting = threading.Event()

    def redeem(name: str) -> None:
        try:
            outcomes[name] = redeem_points(customer_id=customer.pk, points=80, now=at(2025, 3, 20))
        except InsufficientPoints as refused:
            outcomes[name] = refused
        finally:
            connections.close_all()

    # A third connection holds the row lock until both redemptions are inside their
    # transactions and waiting for it, so that they really run at the same time.
    with transaction.atomic():
        Membership.objects.select_for_update().get(customer=customer)
        threads = [threading.Thread(target=redeem, args=(name,)) for name in ("a", "b")]
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with connection.cursor() as cursor:
                # Inside a transaction the statistics views are a snapshot unless cleared.
                cursor.execute("SELECT pg_stat_clear_snapshot()")
                cursor.execute(
                    "SELECT COUNT(*) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND wait_event_type = 'Lock'"
                )
                if cursor.fetchone()[0] == 2:
                    both_waiting.set()
                    break
            time.sleep(0.02)
    for thread in threads:
        thread.join(timeout=10)

    assert both_waiting.is_set()
    refusals = [value for value in outcomes.values() if isinstance(value, InsufficientPoints)]
    assert len(outcomes) == 2
    assert [(refused.balance, refused.requested) for refused in refusals] == [(20, 80)]
    assert stored(customer) == (20, 0) == ledger(customer)


# Expiry


def test_expiry_takes_the_oldest_points_first_so_spent_old_points_leave_nothing_to_expire(
    member: Customer,
) -> None:
    earn_available(member, 100, at(2024, 5, 1))
    earn_available(member, 50, at(2025, 2, 1))
    redeem_points(customer_id=member.pk, points=120, now=at(2025, 6, 1))

    # 2024's 100 points expire at the end of 2025; the 120 redeemed used them all first.
    at_new_year = expire_points(now=at(2026, 1, 1))
    # 2025's 50 expire at the end of 2026: 100 + 50 earned - 120 used - 0 expired = 30.
    a_year_later = expire_points(now=at(2027, 1, 1))

    assert at_new_year.entries_count == 0
    assert (a_year_later.entries_count, a_year_later.points_total) == (1, -30)
    assert stored(member) == (0, 0) == ledger(member)
    expiry = PointsEntry.objects.get(customer=member, kind="expire")
    assert (expiry.idempotency_key, expiry.effective_at) == (
        f"expire:{member.pk}:2027-01-01:30",
        at(2027, 1, 1),
    )


def test_expiry_takes_what_is_left_of_a_year_at_its_end_and_not_a_moment_before(
    member: Customer,
) -> None:
    earn_available(member, 100, at(2024, 5, 1))
    redeem_points(customer_id=member.pk, points=30, now=at(2025, 1, 10))
    earn_available(member, 50, at(2025, 2, 1))

    just_before = expire_points(now=at(2025, 12, 31, 23, 59, 59, 999999))
    at_the_end = expire_points(now=at(2026, 1, 1))

    assert just_before.entries_count == 0
    assert (at_the_end.entries_count, at_the_end.points_total) == (1, -70)
    assert stored(member) == (50, 0) == ledger(member)


def test_expiry_run_again_expires_nothing_more(member: Customer) -> None:
    earn_available(member, 100, at(2024, 5, 1))
    expire_points(now=at(2026, 1, 1))

    again = expire_points(now=at(2026, 1, 1))
    later = expire_points(now=at(2026, 6, 1))

    assert (again.entries_count, later.entries_count) == (0, 0)
    assert stored(member) == (0, 0) == ledger(member)
    assert PointsEntry.objects.filter(customer=member, kind="expire").count() == 1


def test_points_that_arrive_after_their_expiry_expire_on_the_next_run(member: Customer) -> None:
    earn_available(member, 100, at(2024, 5, 1))
    expire_points(now=at(2026, 1, 1))
    # An old review imported late: earned in 2024, so already past its expiry.
    new_event(customer=member, name="review", occurred_at=at(2024, 7, 1))
    award_points(now=at(2026, 2, 1))

    result = expire_points(now=at(2026, 2, 2))

    assert (result.entries_count, result.points_total) == (1, -5)
    assert list(
        PointsEntry.objects.filter(customer=member, kind="expire")
        .order_by("id")
        .values_list("idempotency_key", flat=True)
    ) == [f"expire:{member.pk}:2026-01-01:100", f"expire:{member.pk}:2026-01-01:105"]
    assert stored(member) == (0, 0)


# Manual adjustments


def test_an_admin_adjusts_points_with_a_reason(member: Customer, admin_user: Any) -> None:
    entry = adjust_points(
        customer_id=member.pk,
        delta=50,
        reason="  compensation for a late delivery ",
        actor=admin_user,
        now=at(2025, 3, 20),
    )

    assert (entry.kind, entry.delta, entry.reason, entry.created_by_id) == (
        "adjust",
        50,
        "compensation for a late delivery",
        admin_user.pk,
    )
    assert entry.expires_at == at(2027, 1, 1)
    assert stored(member) == (50, 0) == ledger(member)


@pytest.mark.parametrize("reason", ["", "   "], ids=["empty", "blank"])
def test_an_adjustment_without_a_reason_is_refused(
    member: Customer, admin_user: Any, reason: str
) -> None:
    with pytest.raises(ValidationError) as error:
        adjust_points(customer_id=member.pk, delta=50, reason=reason, actor=admin_user)

    assert error.value.message_dict == {"reason": ["Enter a reason."]}
    assert PointsEntry.objects.filter(customer=member).count() == 0


@pytest.mark.parametrize("role", ["Operators", "Managers"])
def test_only_admins_may_adjust_points(
    member: Customer, make_user: Callable[..., Any], role: str
) -> None:
    user = make_user(role)

    with pytest.raises(PermissionDenied):
        adjust_points(customer_id=member.pk, delta=50, reason="goodwill", actor=user)

    assert stored(member) == (0, 0)


def test_a_deduction_may_not_take_the_balance_below_zero(member: Customer, admin_user: Any) -> None:
    adjust_points(customer_id=member.pk, delta=50, reason="goodwill", actor=admin_user)

    with pytest.raises(InsufficientPoints) as refused:
        adjust_points(customer_id=member.pk, delta=-80, reason="fraud", actor=admin_user)
    adjust_points(customer_id=member.pk, delta=-50, reason="fraud", actor=admin_user)

    assert (refused.value.balance, refused.value.requested) == (50, 80)
    assert stored(member) == (0, 0) == ledger(member)


# The invariant under any sequence of operations

ORDER_AMOUNTS = st.decimals(min_value=0, max_value=900, places=2)
OPERATIONS = st.lists(
    st.one_of(
        st.tuples(st.just("order"), ORDER_AMOUNTS),
        st.tuples(st.just("event"), st.sampled_from(["review", "share", "sign_in", "view"])),
        st.tuples(st.just("refund"), st.integers(min_value=0, max_value=20)),
        st.tuples(st.just("wait_hours"), st.integers(min_value=1, max_value=24 * 400)),
        st.tuples(st.just("award"), st.none()),
        st.tuples(st.just("release"), st.none()),
        st.tuples(st.just("reverse"), st.none()),
        st.tuples(st.just("expire"), st.none()),
        st.tuples(st.just("redeem"), st.integers(min_value=1, max_value=600)),
        st.tuples(st.just("adjust"), st.integers(min_value=-300, max_value=300).filter(bool)),
    ),
    max_size=25,
)


class _Rollback(Exception):
    pass


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(operations=OPERATIONS)
def test_balances_always_equal_the_ledger_after_any_sequence_of_operations(
    defaults: None, admin_user: Any, operations: list[tuple[str, Any]]
) -> None:
    try:
        with transaction.atomic():
            customers = [make_member(), make_member()]
            clock = at(2024, 11, 1)
            for step, (operation, value) in enumerate(operations):
                customer = customers[step % 2]
                clock += dt.timedelta(minutes=7)
                if operation == "order":
                    new_order(customer=customer, amount=value, placed_at=clock)
                elif operation == "event":
                    new_event(customer=customer, name=value, occurred_at=clock)
                elif operation == "refund":
                    picked = list(
                        Order.objects.filter(customer__in=customers)
                        .order_by("id")
                        .values_list("pk", flat=True)[value : value + 1]
                    )
                    Order.objects.filter(pk__in=picked).update(status=OrderStatus.REFUNDED)
                elif operation == "wait_hours":
                    clock += dt.timedelta(hours=value)
                elif operation in {"award", "release", "reverse", "expire"}:
                    service = {
                        "award": award_points,
                        "release": release_pending_points,
                        "reverse": reverse_refunded_orders,
                        "expire": expire_points,
                    }[operation]
                    service(now=clock)
                elif operation == "redeem":
                    with contextlib.suppress(InsufficientPoints):
                        redeem_points(customer_id=customer.pk, points=value, now=clock)
                else:
                    with contextlib.suppress(InsufficientPoints):
                        adjust_points(
                            customer_id=customer.pk,
                            delta=value,
                            reason="test",
                            actor=admin_user,
                            now=clock,
                        )
                assert check_points_ledger().mismatches == []
            for customer in customers:
                balance, pending = stored(customer)
                assert (balance, pending) == ledger(customer)
                # Only a refund after the release may leave a debt; nothing else overdraws.
                has_refund_debt = PointsEntry.objects.filter(
                    customer=customer, kind="order_refund", bucket="available"
                ).exists()
                assert pending >= 0
                assert balance >= 0 or has_refund_debt
            raise _Rollback
    except _Rollback:
        pass


# Checking the ledger


def test_loyalty_verify_says_ok_when_every_balance_matches_the_ledger(member: Customer) -> None:
    new_event(customer=member, name="review", occurred_at=at(2025, 3, 10))
    award_points(now=at(2025, 3, 11))
    out = io.StringIO()

    call_command("loyalty_verify", stdout=out)

    assert (
        out.getvalue()
        == f"OK: the points of {Membership.objects.count()} members match the ledger.\n"
    )


def test_loyalty_verify_names_each_tampered_member_and_exits_1(member: Customer) -> None:
    other = make_member()
    new_event(customer=member, name="review", occurred_at=at(2025, 3, 10))
    new_order(customer=other, amount=Decimal("42"), placed_at=at(2025, 3, 10))
    award_points(now=at(2025, 3, 11))
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {Membership._meta.db_table} SET points_balance = 999 WHERE customer_id = %s",
            [member.pk],
        )
        cursor.execute(
            f"UPDATE {Membership._meta.db_table} SET pending_points = 0 WHERE customer_id = %s",
            [other.pk],
        )
    out = io.StringIO()

    with pytest.raises(SystemExit) as exit_:
        call_command("loyalty_verify", stdout=out)

    assert exit_.value.code == 1
    members = Membership.objects.count()
    assert out.getvalue().splitlines() == [
        f"customer {member.pk}: stored balance 999, pending 0; ledger balance 5, pending 0",
        f"customer {other.pk}: stored balance 0, pending 0; ledger balance 0, pending 42",
        f"2 of {members} members differ from the ledger.",
    ]


def test_loyalty_verify_json_lists_the_differences(member: Customer) -> None:
    Membership.objects.filter(customer=member).update(pending_points=7)
    out = io.StringIO()

    with pytest.raises(SystemExit):
        call_command("loyalty_verify", "--json", stdout=out)

    assert json.loads(out.getvalue()) == {
        "ok": False,
        "members_checked": Membership.objects.count(),
        "mismatches": [
            {
                "customer_id": member.pk,
                "stored_balance": 0,
                "stored_pending": 7,
                "ledger_balance": 0,
                "ledger_pending": 0,
            }
        ],
    }


# Reads


def test_the_points_overview_sums_each_local_month(member: Customer) -> None:
    earn_available(member, 200, at(2024, 12, 20))  # released 2024-12-27
    # 00:30 on 1 February in Shanghai is still January in UTC.
    new_event(customer=member, name="share", occurred_at=at(2025, 2, 1, 0, 30))
    award_points(now=at(2025, 2, 2))
    redeem_points(customer_id=member.pk, points=50, now=at(2025, 2, 10))

    overview = get_points_overview(months=3, now=at(2025, 2, 28))

    assert [
        (month.month, month.issued, month.redeemed, month.expired, month.usage_rate)
        for month in overview
    ] == [
        (dt.date(2024, 12, 1), 200, 0, 0, Decimal("0")),
        (dt.date(2025, 1, 1), 0, 0, 0, None),
        (dt.date(2025, 2, 1), 10, 50, 0, Decimal("5.0000")),
    ]


def test_the_overview_counts_expired_points_in_the_month_they_expire(member: Customer) -> None:
    earn_available(member, 80, at(2024, 3, 1))
    redeem_points(customer_id=member.pk, points=20, now=at(2024, 6, 1))
    expire_points(now=at(2026, 1, 3))

    overview = get_points_overview(months=2, now=at(2026, 1, 31))

    assert [(month.month, month.expired) for month in overview] == [
        (dt.date(2025, 12, 1), 0),
        (dt.date(2026, 1, 1), 60),
    ]


def test_a_customers_points_entries_list_newest_first(member: Customer) -> None:
    new_event(customer=member, name="review", occurred_at=at(2025, 3, 10))
    new_event(customer=member, name="share", occurred_at=at(2025, 3, 11))
    award_points(now=at(2025, 3, 12))
    redeem_points(customer_id=member.pk, points=12, now=at(2025, 3, 13))

    entries = list_points_entries(member.pk, limit=2)

    assert [(entry.kind, entry.delta) for entry in entries] == [("redeem", -12), ("event_earn", 10)]


# Jobs


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_the_points_jobs_run_on_a_real_worker(rq_queues: dict[str, Any]) -> None:
    make_loyalty_defaults()
    customer = new_customer(registered_at=at(2024, 1, 1))
    new_order(customer=customer, amount=Decimal("120.50"), placed_at=at(2024, 3, 1))
    returned = new_order(customer=customer, amount=Decimal("30"), placed_at=at(2024, 3, 1))
    new_event(customer=customer, name="review", occurred_at=at(2024, 3, 1))
    queue = rq_queues[DEFAULT_QUEUE]
    worker = SimpleWorker([queue], connection=queue.connection)
    award = queue.enqueue(award_points_job, at(2024, 3, 2).isoformat())
    worker.work(burst=True)
    Order.objects.filter(pk=returned.pk).update(status=OrderStatus.REFUNDED)
    later = [
        queue.enqueue(reverse_refunded_orders_job, at(2024, 3, 3).isoformat()),
        queue.enqueue(release_pending_points_job, at(2024, 3, 9).isoformat()),
        queue.enqueue(expire_points_job, at(2026, 1, 1).isoformat()),
    ]

    worker.work(burst=True)

    results = [job.latest_result().return_value for job in [award, *later]]
    assert [(result["entries_count"], result["points_total"]) for result in results] == [
        (3, 155),
        (1, -30),
        (2, 120),
        (1, -125),
    ]
    assert stored(customer) == (0, 0) == ledger(customer)
    assert list(PointsBatch.objects.order_by("id").values_list("kind", flat=True)) == [
        BatchKind.AWARD,
        BatchKind.REFUND,
        BatchKind.RELEASE,
        BatchKind.EXPIRE,
    ]
