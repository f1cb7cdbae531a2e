"""RQ entry points of the loyalty app: thin, taking ids or ISO strings, safe to run twice."""

from __future__ import annotations

import dataclasses
import datetime as dt

import django_rq
from django.utils import timezone

from loyalty.services.memberships import sync_memberships
from loyalty.services.points import (
    BatchResult,
    award_points,
    expire_points,
    release_pending_points,
    reverse_refunded_orders,
)
from loyalty.services.tiers import recompute_tiers

# The name console.queues.DEFAULT gives the queue; spelled out because loyalty, a lower layer,
# cannot import console.
DEFAULT_QUEUE = "default"

# Tiers


def recompute_tiers_job(now_iso: str | None = None) -> dict[str, int]:
    """Recompute every member's tier as of now_iso (an aware ISO date-time; empty: now)."""
    return dataclasses.asdict(recompute_tiers(now=_points_now(now_iso)))


def sync_memberships_job() -> int:
    """Give every customer without a membership one at the lowest tier."""
    return sync_memberships(now=timezone.now())


# Points
# Each job runs one idempotent batch (see loyalty/services/earning.py): a retry, or two workers
# running the same job, write nothing twice. They go on DEFAULT_QUEUE.


def _points_now(now_iso: str | None) -> dt.datetime:
    return dt.datetime.fromisoformat(now_iso) if now_iso else timezone.now()


def _batch_summary(result: BatchResult) -> dict[str, int]:
    return {
        "batch_id": result.batch_id,
        "entries_count": result.entries_count,
        "points_total": result.points_total,
    }


def award_points_job(now_iso: str | None = None) -> dict[str, int]:
    """Give new customers a membership, then earn points for orders and events up to now_iso."""
    now = _points_now(now_iso)
    sync_memberships(now=now)
    return _batch_summary(award_points(now=now))


def release_pending_points_job(now_iso: str | None = None) -> dict[str, int]:
    """Make available the points of paid orders whose return window ended by now_iso."""
    return _batch_summary(release_pending_points(now=_points_now(now_iso)))


def reverse_refunded_orders_job(now_iso: str | None = None) -> dict[str, int]:
    """Take back the points of orders refunded since the last run (run it after imports)."""
    return _batch_summary(reverse_refunded_orders(now=_points_now(now_iso)))


def expire_points_job(now_iso: str | None = None) -> dict[str, int]:
    """Expire the points whose expiry has passed by now_iso (first in, first out)."""
    return _batch_summary(expire_points(now=_points_now(now_iso)))


# After ingest
# settings.INGEST_LISTENERS names on_ingested: when orders, events or customers arrive, members
# get their memberships and points within a minute, however many chunks or API batches arrived.

CATCH_UP_DELAY = dt.timedelta(seconds=10)  # gathers a burst of API batches into one run
CATCH_UP_PENDING_KEY = "yunying:loyalty:catch-up-pending"
CATCH_UP_PENDING_TTL = 120  # seconds; a lost job (worker killed) frees the slot after this


def catch_up_job() -> dict[str, int]:
    """Memberships for new customers, points earned by new orders and events, refunds reversed,
    and tiers recomputed (an import can lift members into a higher tier at once)."""
    django_rq.get_connection(DEFAULT_QUEUE).delete(CATCH_UP_PENDING_KEY)
    now = timezone.now()
    sync_memberships(now=now)
    earned = award_points(now=now)
    reversed_ = reverse_refunded_orders(now=now)
    tiers = recompute_tiers(now=now)
    return {
        "earned": earned.points_total,
        "reversed": reversed_.points_total,
        "upgraded": tiers.upgraded,
        "downgraded": tiers.downgraded,
    }


def on_ingested(kind: str, customer_ids: frozenset[int] | None) -> None:
    """Schedule one catch_up_job unless one is already waiting (see CATCH_UP_DELAY)."""
    connection = django_rq.get_connection(DEFAULT_QUEUE)
    if connection.set(CATCH_UP_PENDING_KEY, kind, nx=True, ex=CATCH_UP_PENDING_TTL):
        django_rq.get_queue(DEFAULT_QUEUE).enqueue_in(CATCH_UP_DELAY, catch_up_job)
