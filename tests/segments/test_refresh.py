from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from django.db import connection, transaction
from django.utils import translation

from customers.models import Customer
from segments.models import Segment, SegmentMember, SegmentRefresh
from segments.queries import list_segment_refreshes
from segments.services.refresh import (
    SegmentIsFrozen,
    claim_due_segments,
    prune_segment_refreshes,
    refresh_for_customers,
    refresh_segment_members,
)
from tests.factories import SHANGHAI, CustomerFactory

AS_OF = dt.datetime(2026, 11, 20, 12, 0, tzinfo=SHANGHAI)
LATER = AS_OF + dt.timedelta(hours=2)
IN_SHANGHAI = {"all": [{"field": "city", "op": "eq", "value": "上海"}]}


@pytest.fixture(autouse=True)
def _english() -> Iterator[None]:
    # Messages are asserted in their English source strings.
    with translation.override("en"):
        yield


@pytest.fixture(autouse=True)
def _without_templates(db: None) -> None:
    # The shipped templates are segments too; these tests count only their own.
    Segment.objects.filter(is_template=True).delete()


def make_segment(definition: dict[str, Any] = IN_SHANGHAI, **fields: Any) -> Segment:
    fields.setdefault("name", f"segment {Segment.objects.count() + 1}")
    return Segment.objects.create(definition=definition, **fields)


def customers(*cities: str) -> list[Any]:
    return [
        CustomerFactory(external_id=f"C{number}", city=city)
        for number, city in enumerate(cities, start=1)
    ]


def members(segment: Segment) -> list[str]:
    return sorted(
        SegmentMember.objects.filter(segment=segment).values_list(
            "customer__external_id", flat=True
        )
    )


def move(external_id: str, city: str) -> None:
    Customer.objects.filter(external_id=external_id).update(city=city)


def test_a_refresh_inserts_who_joined_and_deletes_who_left(db: None) -> None:
    # given
    customers("上海", "上海", "上海", "北京")
    segment = make_segment()
    refresh_segment_members(segment_id=segment.pk, as_of=AS_OF)
    move("C2", "北京")
    move("C4", "上海")
    CustomerFactory(external_id="C5", city="上海")

    # when
    refresh = refresh_segment_members(segment_id=segment.pk, as_of=LATER)

    # then
    segment.refresh_from_db()
    assert members(segment) == ["C1", "C3", "C4", "C5"]
    assert (refresh.size, refresh.joined, refresh.left, refresh.error) == (4, 2, 1, "")
    assert (segment.size, segment.refreshed_at, segment.last_error) == (4, LATER, "")
    assert segment.next_refresh_at == LATER + dt.timedelta(minutes=60)
    joined_at = dict(
        SegmentMember.objects.filter(segment=segment).values_list(
            "customer__external_id", "joined_at"
        )
    )
    assert joined_at == {"C1": AS_OF, "C3": AS_OF, "C4": LATER, "C5": LATER}


def test_a_refresh_with_nothing_changed_writes_no_member(db: None) -> None:
    # given
    customers("上海", "北京", "上海")
    segment = make_segment()
    refresh_segment_members(segment_id=segment.pk, as_of=AS_OF)
    before = list(SegmentMember.objects.order_by("pk").values_list("pk", "customer_id"))

    # when
    refresh = refresh_segment_members(segment_id=segment.pk, as_of=LATER)

    # then
    assert (refresh.size, refresh.joined, refresh.left) == (2, 0, 0)
    assert list(SegmentMember.objects.order_by("pk").values_list("pk", "customer_id")) == before


def test_each_refresh_is_a_row_of_the_size_history(db: None) -> None:
    # given
    customers("上海", "上海", "北京")
    segment = make_segment()

    # when
    refresh_segment_members(segment_id=segment.pk, as_of=AS_OF)
    move("C3", "上海")
    refresh_segment_members(segment_id=segment.pk, as_of=LATER)
    move("C1", "杭州")
    move("C2", "杭州")
    refresh_segment_members(segment_id=segment.pk, as_of=LATER + dt.timedelta(hours=1))

    # then
    history = list_segment_refreshes(segment.pk)
    assert [(p.as_of, p.scope, p.size, p.joined, p.left, p.error) for p in history] == [
        (AS_OF, "full", 2, 2, 0, ""),
        (LATER, "full", 3, 1, 0, ""),
        (LATER + dt.timedelta(hours=1), "full", 1, 0, 2, ""),
    ]
    refresh = SegmentRefresh.objects.filter(segment=segment).latest("started_at")
    assert refresh.finished_at is not None
    assert refresh.finished_at >= refresh.started_at
    assert refresh.duration_ms >= 0


def test_a_refresh_that_fails_keeps_the_members_and_shows_the_error(db: None) -> None:
    # given
    customers("上海", "上海", "北京")
    segment = make_segment()
    refresh_segment_members(segment_id=segment.pk, as_of=AS_OF)
    move("C3", "上海")
    Segment.objects.filter(pk=segment.pk).update(
        definition={"all": [{"field": "city", "op": "gt", "value": "上海"}]}
    )

    # when
    refresh = refresh_segment_members(segment_id=segment.pk, as_of=LATER)

    # then
    segment.refresh_from_db()
    assert members(segment) == ["C1", "C2"]
    assert refresh.error == "all[0].op: 'gt' is not an op of text field 'city'"
    assert (refresh.size, refresh.joined, refresh.left) == (2, 0, 0)
    assert (segment.size, segment.refreshed_at, segment.last_error) == (2, AS_OF, refresh.error)
    # Tried again after its interval, not at every tick of the schedule.
    assert segment.next_refresh_at == LATER + dt.timedelta(minutes=60)


def test_a_refresh_after_the_rules_are_fixed_clears_the_error(db: None) -> None:
    # given
    customers("上海", "北京")
    segment = make_segment({"all": [{"field": "city", "op": "gt", "value": "上海"}]})
    failed = refresh_segment_members(segment_id=segment.pk, as_of=AS_OF)
    Segment.objects.filter(pk=segment.pk).update(definition=IN_SHANGHAI)

    # when
    refresh = refresh_segment_members(segment_id=segment.pk, as_of=LATER)

    # then
    segment.refresh_from_db()
    assert failed.error != ""
    assert (refresh.error, segment.last_error, segment.refreshed_at) == ("", "", LATER)
    assert members(segment) == ["C1"]


def test_a_refresh_fails_visibly_when_a_referenced_segment_was_deleted(db: None) -> None:
    # given
    customers("上海", "北京")
    referenced = make_segment(kind="static")
    refresh_segment_members(segment_id=referenced.pk, as_of=AS_OF)
    segment = make_segment({"all": [{"segment": referenced.pk}]})
    refresh_segment_members(segment_id=segment.pk, as_of=AS_OF)
    referenced_id = referenced.pk
    referenced.delete()

    # when
    refresh = refresh_segment_members(segment_id=segment.pk, as_of=LATER)

    # then
    segment.refresh_from_db()
    assert members(segment) == ["C1"]
    assert str(referenced_id) in refresh.error
    assert segment.last_error == refresh.error


def test_a_static_segment_keeps_its_snapshot_until_a_resnapshot(db: None) -> None:
    # given
    customers("上海", "上海", "北京")
    segment = make_segment(kind="static")
    first = refresh_segment_members(segment_id=segment.pk, as_of=AS_OF)
    move("C3", "上海")
    move("C1", "北京")

    # when
    with pytest.raises(SegmentIsFrozen):
        refresh_segment_members(segment_id=segment.pk, as_of=LATER)
    touched = refresh_for_customers(customer_ids=Customer.objects.values_list("pk", flat=True))
    due = claim_due_segments(now=LATER + dt.timedelta(days=30))

    # then
    segment.refresh_from_db()
    assert (first.scope, first.joined) == ("snapshot", 2)
    assert members(segment) == ["C1", "C2"]
    assert (touched, due, segment.refreshed_at, segment.next_refresh_at) == ([], [], AS_OF, None)

    # when
    snapshot = refresh_segment_members(segment_id=segment.pk, as_of=LATER, resnapshot=True)

    # then
    assert members(segment) == ["C2", "C3"]
    assert (snapshot.scope, snapshot.joined, snapshot.left) == ("snapshot", 1, 1)


def test_the_schedule_claims_only_the_dynamic_segments_that_are_due(db: None) -> None:
    # given
    never = make_segment(name="never refreshed")
    hourly = make_segment(name="hourly")
    daily = make_segment(name="daily", refresh_interval_minutes=24 * 60)
    static = make_segment(name="static", kind="static")
    for segment in (hourly, daily):
        refresh_segment_members(segment_id=segment.pk, as_of=AS_OF)

    # when
    at_59_minutes = claim_due_segments(now=AS_OF + dt.timedelta(minutes=59))
    again = claim_due_segments(now=AS_OF + dt.timedelta(minutes=59))
    at_60_minutes = claim_due_segments(now=AS_OF + dt.timedelta(minutes=60))
    at_a_day = claim_due_segments(now=AS_OF + dt.timedelta(days=1))

    # then
    assert at_59_minutes == [never.pk]
    assert again == []
    assert at_60_minutes == [hourly.pk]
    assert at_a_day == [never.pk, hourly.pk, daily.pk]
    assert static.pk not in at_a_day


def test_a_touched_customers_refresh_equals_a_full_refresh_for_those_customers(db: None) -> None:
    # given
    customers("上海", "上海", "北京", "北京", "上海", "杭州")
    incremental = make_segment(name="incremental")
    full = make_segment(name="full")
    other_rules = make_segment({"all": [{"field": "city", "op": "eq", "value": "北京"}]})
    for segment in (incremental, full, other_rules):
        refresh_segment_members(segment_id=segment.pk, as_of=AS_OF)
    move("C1", "北京")
    move("C3", "上海")
    CustomerFactory(external_id="C7", city="上海")
    touched = list(
        Customer.objects.filter(external_id__in=["C1", "C3", "C7"]).values_list("pk", flat=True)
    )

    # when
    refreshes = refresh_for_customers(customer_ids=touched, as_of=LATER)
    refresh_segment_members(segment_id=full.pk, as_of=LATER)

    # then
    assert members(incremental) == members(full) == ["C2", "C3", "C5", "C7"]
    assert members(other_rules) == ["C1", "C4"]
    assert sorted((r.segment.name, r.scope, r.size, r.joined, r.left) for r in refreshes) == [
        ("full", "customers", 4, 2, 1),
        ("incremental", "customers", 4, 2, 1),
        ("segment 3", "customers", 2, 1, 1),
    ]
    incremental.refresh_from_db()
    # The others are only as fresh as the last full refresh.
    assert (incremental.size, incremental.refreshed_at) == (4, AS_OF)


def test_a_touched_customers_refresh_leaves_the_other_customers_alone(db: None) -> None:
    # given
    customers("上海", "上海", "北京")
    segment = make_segment()
    refresh_segment_members(segment_id=segment.pk, as_of=AS_OF)
    move("C1", "北京")
    move("C3", "上海")
    c3 = Customer.objects.get(external_id="C3")

    # when
    refresh_for_customers(customer_ids=[c3.pk], as_of=LATER)

    # then
    assert members(segment) == ["C1", "C2", "C3"]


def test_a_touched_customers_refresh_that_changes_nothing_records_no_history(db: None) -> None:
    # given
    customers("上海", "北京")
    segment = make_segment()
    refresh_segment_members(segment_id=segment.pk, as_of=AS_OF)

    # when
    refreshes = refresh_for_customers(
        customer_ids=Customer.objects.values_list("pk", flat=True), as_of=LATER
    )

    # then
    assert refreshes == []
    assert SegmentRefresh.objects.filter(segment=segment).count() == 1


def test_a_touched_customers_refresh_of_a_broken_segment_records_the_error_once(
    db: None,
) -> None:
    # given
    customers("上海", "北京")
    segment = make_segment()
    refresh_segment_members(segment_id=segment.pk, as_of=AS_OF)
    Segment.objects.filter(pk=segment.pk).update(
        definition={"all": [{"field": "city", "op": "gt", "value": "上海"}]}
    )
    ids = list(Customer.objects.values_list("pk", flat=True))

    # when
    first = refresh_for_customers(customer_ids=ids, as_of=LATER)
    second = refresh_for_customers(customer_ids=ids, as_of=LATER)

    # then
    segment.refresh_from_db()
    assert [r.error for r in first] == ["all[0].op: 'gt' is not an op of text field 'city'"]
    assert second == []
    assert (segment.last_error, members(segment)) == (first[0].error, ["C1"])


postgresql_only = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="SQLite serialises every write transaction"
)


def _in_thread(target: Any) -> threading.Thread:
    def run() -> None:
        try:
            target()
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    return thread


@postgresql_only
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_a_refresh_waits_for_the_lock_another_refresh_holds() -> None:
    # given
    customers("上海", "上海", "北京")
    segment = make_segment()
    holding, release, refreshed = threading.Event(), threading.Event(), threading.Event()

    def hold_the_segment() -> None:
        with transaction.atomic():
            Segment.objects.select_for_update().get(pk=segment.pk)
            holding.set()
            release.wait(10)

    def refresh() -> None:
        refresh_segment_members(segment_id=segment.pk, as_of=AS_OF)
        refreshed.set()

    holder = _in_thread(hold_the_segment)
    assert holding.wait(10)

    # when
    refresher = _in_thread(refresh)

    # then
    assert not refreshed.wait(0.5)
    release.set()
    holder.join(10)
    refresher.join(10)
    assert refreshed.is_set()
    assert members(segment) == ["C1", "C2"]


@postgresql_only
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_two_refreshes_at_once_both_succeed_one_after_the_other() -> None:
    # given
    customers(*["上海"] * 50, "北京")
    segment = make_segment()
    start = threading.Barrier(2)

    def refresh() -> None:
        start.wait(10)
        refresh_segment_members(segment_id=segment.pk, as_of=AS_OF)

    # when
    threads = [_in_thread(refresh), _in_thread(refresh)]
    for thread in threads:
        thread.join(30)

    # then
    history = SegmentRefresh.objects.filter(segment=segment).order_by("started_at", "pk")
    assert sorted((r.joined, r.left, r.size, r.error) for r in history) == [
        (0, 0, 50, ""),
        (50, 0, 50, ""),
    ]
    assert len(members(segment)) == 50


def test_pruning_deletes_only_the_history_before_the_given_time(db: None) -> None:
    # given
    segment = make_segment()
    for as_of in (AS_OF - dt.timedelta(days=500), AS_OF):
        refresh_segment_members(segment_id=segment.pk, as_of=as_of)
    SegmentRefresh.objects.filter(as_of__lt=AS_OF).update(started_at=AS_OF - dt.timedelta(days=500))
    SegmentRefresh.objects.filter(as_of=AS_OF).update(started_at=AS_OF)

    # when
    deleted = prune_segment_refreshes(before=AS_OF - dt.timedelta(days=400))

    # then
    assert deleted == 1
    assert [point.as_of for point in list_segment_refreshes(segment.pk)] == [AS_OF]
