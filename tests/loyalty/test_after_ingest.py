from __future__ import annotations

import json
from typing import Any

import django_rq
import pytest
from django.test import Client
from rq import Queue, SimpleWorker

from customers.services import create_api_key
from loyalty.jobs import CATCH_UP_PENDING_KEY, DEFAULT_QUEUE
from loyalty.models import Membership, PointsEntry
from tests.factories import CustomerFactory

pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)


@pytest.fixture
def default_queue(rq_queues: dict[str, Queue]) -> Queue:
    queue = rq_queues[DEFAULT_QUEUE]
    for job_id in queue.scheduled_job_registry.get_job_ids():
        queue.scheduled_job_registry.remove(job_id)
    django_rq.get_connection(DEFAULT_QUEUE).delete(CATCH_UP_PENDING_KEY)
    return queue


def post_orders(client: Client, items: list[dict[str, Any]]) -> Any:
    return client.post("/api/v1/orders", data=json.dumps(items), content_type="application/json")


def order(order_id: str, amount: str) -> dict[str, Any]:
    return {
        "order_id": order_id,
        "customer_id": "C1",
        "placed_at": "2026-11-20T10:00:00+08:00",
        "amount": amount,
    }


def test_orders_from_the_api_earn_pending_points_after_one_catch_up_job(
    default_queue: Queue, admin_user: Any
) -> None:
    CustomerFactory(external_id="C1")
    client = Client(
        headers={"Authorization": f"Bearer {create_api_key(name='shop', actor=admin_user)[1]}"}
    )

    assert post_orders(client, [order("O1", "120.50")]).status_code == 200
    assert post_orders(client, [order("O2", "80.00")]).status_code == 200

    scheduled = default_queue.scheduled_job_registry.get_job_ids()
    assert len(scheduled) == 1
    job = default_queue.fetch_job(scheduled[0])
    assert job is not None
    default_queue.scheduled_job_registry.remove(job)
    default_queue.enqueue_job(job)
    SimpleWorker([default_queue], connection=default_queue.connection).work(burst=True)

    membership = Membership.objects.get(customer__external_id="C1")
    assert (membership.tier.code, membership.pending_points, membership.points_balance) == (
        "normal",
        200,
        0,
    )
    assert sorted(PointsEntry.objects.values_list("delta", flat=True)) == [80, 120]
    assert not django_rq.get_connection(DEFAULT_QUEUE).exists(CATCH_UP_PENDING_KEY)


def test_a_rejected_batch_schedules_nothing(default_queue: Queue, admin_user: Any) -> None:
    client = Client(
        headers={"Authorization": f"Bearer {create_api_key(name='shop', actor=admin_user)[1]}"}
    )

    assert post_orders(client, [order("O1", "-1")]).status_code == 400

    assert default_queue.scheduled_job_registry.get_job_ids() == []
