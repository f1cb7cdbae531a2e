from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import django_rq
import pytest
from django.test import Client
from django.utils import timezone, translation
from rq import Queue, SimpleWorker

from console import queues
from customers.ingest.runs import create_import_run
from customers.jobs import IMPORTS_QUEUE, run_import_job
from customers.models import Customer
from customers.services import create_api_key
from segments.jobs import (
    SEGMENTS_QUEUE,
    TOUCHED_ALL_KEY,
    TOUCHED_KEY,
    TOUCHED_PENDING_KEY,
    on_ingested,
    refresh_due_segments_job,
)
from segments.models import Segment, SegmentKind, SegmentMember
from segments.services.refresh import refresh_segment_members
from segments.services.segments import create_segment
from tests.factories import CustomerFactory

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)

IN_SHANGHAI = {"all": [{"field": "city", "op": "eq", "value": "上海"}]}
HAS_ORDERED = {"all": [{"field": "orders_count", "op": "gte", "value": 1}]}


@pytest.fixture(autouse=True)
def _english() -> Iterator[None]:
    # Messages are asserted in their English source strings.
    with translation.override("en"):
        yield


@pytest.fixture(autouse=True)
def _without_templates(db: None) -> None:
    # The shipped templates are segments too; these tests count only their own.
    Segment.objects.filter(is_template=True).delete()


@pytest.fixture
def segments_queue(rq_queues: dict[str, Queue]) -> Queue:
    queue = rq_queues[SEGMENTS_QUEUE]
    for job_id in queue.scheduled_job_registry.get_job_ids():
        queue.scheduled_job_registry.remove(job_id)
    django_rq.get_connection(SEGMENTS_QUEUE).delete(
        TOUCHED_KEY, TOUCHED_ALL_KEY, TOUCHED_PENDING_KEY
    )
    return queue


def drain(queue: Queue) -> None:
    SimpleWorker([queue], connection=queue.connection).work(burst=True)


def run_scheduled(queue: Queue) -> int:
    """Move the delayed jobs into the queue (as RQ's scheduler would when they are due)."""
    scheduled = queue.scheduled_job_registry.get_job_ids()
    for job_id in scheduled:
        job = queue.fetch_job(job_id)
        assert job is not None
        queue.scheduled_job_registry.remove(job)
        queue.enqueue_job(job)
    return len(scheduled)


def members(segment: Segment) -> list[str]:
    return sorted(
        SegmentMember.objects.filter(segment=segment).values_list(
            "customer__external_id", flat=True
        )
    )


def make_segment(definition: dict[str, Any], name: str, **fields: Any) -> Segment:
    segment = Segment.objects.create(name=name, definition=definition, **fields)
    refresh_segment_members(segment_id=segment.pk)
    return segment


def test_the_segments_queue_is_the_console_queue_of_that_name() -> None:
    assert SEGMENTS_QUEUE == queues.SEGMENTS


def test_a_new_segment_is_filled_by_a_worker_after_its_creation_commits(
    segments_queue: Queue, operator: Any
) -> None:
    # given
    CustomerFactory(external_id="C1", city="上海")
    CustomerFactory(external_id="C2", city="北京")

    # when
    segment = create_segment(name="上海客户", definition=IN_SHANGHAI, actor=operator)

    # then
    assert segments_queue.count == 1
    assert segments_queue.jobs[0].func_name == "segments.jobs.refresh_segment_job"

    # when
    drain(segments_queue)

    # then
    segment.refresh_from_db()
    assert members(segment) == ["C1"]
    assert segment.size == 1
    assert segment.refreshed_at is not None


def test_the_scheduled_job_queues_each_due_segment_and_a_worker_refreshes_them(
    segments_queue: Queue,
) -> None:
    # given
    CustomerFactory(external_id="C1", city="上海")
    due = Segment.objects.create(name="due", definition=IN_SHANGHAI)
    fresh = make_segment(IN_SHANGHAI, "fresh")
    static = Segment.objects.create(name="static", definition=IN_SHANGHAI, kind="static")
    CustomerFactory(external_id="C2", city="上海")

    # when
    queued = refresh_due_segments_job()

    # then
    assert queued == 1
    assert [job.args for job in segments_queue.jobs] == [(due.pk,)]

    # when
    drain(segments_queue)

    # then
    assert members(due) == ["C1", "C2"]
    assert members(fresh) == ["C1"]
    assert members(static) == []
    assert refresh_due_segments_job() == 0


def test_orders_from_the_api_bring_a_segment_up_to_date_after_one_worker_run(
    segments_queue: Queue, admin_user: Any
) -> None:
    # given
    CustomerFactory(external_id="C1")
    CustomerFactory(external_id="C2")
    segment = make_segment(HAS_ORDERED, "ordered")
    assert members(segment) == []
    client = Client(
        headers={"Authorization": f"Bearer {create_api_key(name='shop', actor=admin_user)[1]}"}
    )
    placed_at = (timezone.now() - dt.timedelta(hours=1)).isoformat()

    # when
    for order_id in ("O1", "O2"):
        response = client.post(
            "/api/v1/orders",
            data=json.dumps(
                [
                    {
                        "order_id": order_id,
                        "customer_id": "C1",
                        "placed_at": placed_at,
                        "amount": "99",
                    }
                ]
            ),
            content_type="application/json",
        )
        assert response.status_code == 200

    # then
    assert run_scheduled(segments_queue) == 1

    # when
    drain(segments_queue)

    # then
    segment.refresh_from_db()
    assert members(segment) == ["C1"]
    assert segment.size == 1
    assert segment.refreshes.latest("started_at").scope == "customers"
    connection = django_rq.get_connection(SEGMENTS_QUEUE)
    assert not connection.exists(TOUCHED_KEY, TOUCHED_PENDING_KEY)


def test_a_customers_csv_import_brings_a_segment_up_to_date_after_a_worker_run(
    segments_queue: Queue, rq_queues: dict[str, Queue], tmp_path: Path
) -> None:
    # given
    CustomerFactory(external_id="C1", city="上海")
    CustomerFactory(external_id="C2", city="北京")
    segment = make_segment(IN_SHANGHAI, "上海客户")
    upload = tmp_path / "customers.csv"
    upload.write_text(
        "external_id,city,registered_at\n"
        "C1,杭州,2024-01-01\n"
        "C2,上海,2024-01-01\n"
        "C3,上海,2024-01-02\n",
        encoding="utf-8",
    )
    run = create_import_run(kind="customers", file_name="customers.csv", stored_path=upload)

    # when
    rq_queues[IMPORTS_QUEUE].enqueue(run_import_job, run.pk)
    drain(rq_queues[IMPORTS_QUEUE])
    assert run_scheduled(segments_queue) == 1
    drain(segments_queue)

    # then
    assert Customer.objects.count() == 3
    assert members(segment) == ["C2", "C3"]


def test_arrivals_without_customer_ids_queue_a_full_refresh_of_every_dynamic_segment(
    segments_queue: Queue,
) -> None:
    # given
    CustomerFactory(external_id="C1", city="上海")
    dynamic = make_segment(IN_SHANGHAI, "dynamic")
    static = make_segment(IN_SHANGHAI, "static", kind=SegmentKind.STATIC)
    CustomerFactory(external_id="C2", city="上海")

    # when
    on_ingested("customers", None)
    on_ingested("orders", frozenset({1}))
    assert run_scheduled(segments_queue) == 1
    drain(segments_queue)

    # then
    assert members(dynamic) == ["C1", "C2"]
    assert members(static) == ["C1"]


def test_many_arrivals_schedule_one_job(segments_queue: Queue) -> None:
    # given
    first: Any = CustomerFactory()
    second: Any = CustomerFactory()

    # when
    on_ingested("orders", frozenset({first.pk}))
    on_ingested("events", frozenset({second.pk}))
    on_ingested("orders", frozenset({first.pk}))

    # then
    assert len(segments_queue.scheduled_job_registry.get_job_ids()) == 1
    connection = django_rq.get_connection(SEGMENTS_QUEUE)
    assert sorted(int(member) for member in connection.smembers(TOUCHED_KEY)) == sorted(
        [first.pk, second.pk]
    )
