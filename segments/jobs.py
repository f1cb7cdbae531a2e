"""RQ entry points of the segments app: thin, taking ids or ISO strings, safe to run twice."""

from __future__ import annotations

import datetime as dt
from typing import Any

import django_rq
from django.db import transaction
from django.utils import timezone

from customers.metrics import recompute_metrics
from segments.models import Segment
from segments.queries import list_dynamic_segment_ids
from segments.services.refresh import (
    SegmentIsFrozen,
    claim_due_segments,
    prune_segment_refreshes,
    refresh_for_customers,
    refresh_segment_members,
)
from segments.services.tags import apply_tag_rules

# The name console.queues.SEGMENTS gives the queue; spelled out because segments, a lower layer,
# cannot import console (tests/segments/test_refresh_jobs.py checks they agree).
SEGMENTS_QUEUE = "segments"
REFRESH_TIMEOUT = 3600  # seconds; a full refresh of a large segment is one long statement pair


def _as_of(as_of_iso: str | None) -> dt.datetime:
    return dt.datetime.fromisoformat(as_of_iso) if as_of_iso else timezone.now()


def _queue() -> Any:
    return django_rq.get_queue(SEGMENTS_QUEUE)


# One segment


def refresh_segment_job(
    segment_id: int, as_of_iso: str | None = None, resnapshot: bool = False
) -> dict[str, Any]:
    """Refresh one segment (a static one only for its first snapshot or with resnapshot)."""
    if not Segment.objects.filter(pk=segment_id).exists():
        return {"segment_id": segment_id, "skipped": "deleted"}
    try:
        refresh = refresh_segment_members(
            segment_id=segment_id, as_of=_as_of(as_of_iso), resnapshot=resnapshot
        )
    except SegmentIsFrozen:
        return {"segment_id": segment_id, "skipped": "static"}
    return {
        "segment_id": segment_id,
        "size": refresh.size,
        "joined": refresh.joined,
        "left": refresh.left,
        "duration_ms": refresh.duration_ms,
        "error": refresh.error,
    }


def enqueue_segment_refresh(segment_id: int, *, resnapshot: bool = False) -> None:
    """Queue refresh_segment_job (services call it in transaction.on_commit)."""
    _queue().enqueue(
        refresh_segment_job,
        segment_id,
        None,
        resnapshot,
        job_timeout=REFRESH_TIMEOUT,
        description=f"segment {segment_id} {'snapshot' if resnapshot else 'refresh'}",
    )


def _enqueue_refreshes(segment_ids: list[int]) -> None:
    if not segment_ids:
        return
    queue = _queue()
    # enqueue_many is not deferred by django-rq's commit mode: wait for the commit ourselves.
    transaction.on_commit(
        lambda: queue.enqueue_many(
            [
                queue.prepare_data(
                    refresh_segment_job,
                    args=(segment_id,),
                    timeout=REFRESH_TIMEOUT,
                    description=f"segment {segment_id} refresh",
                )
                for segment_id in segment_ids
            ]
        )
    )


# The schedule (console/schedules.py registers it every minute)


def refresh_due_segments_job() -> int:
    """Queue a refresh of every dynamic segment due by its interval; returns how many."""
    due = claim_due_segments(now=timezone.now())
    _enqueue_refreshes(due)
    return len(due)


def refresh_all_dynamic_segments_job() -> int:
    """Queue a refresh of every dynamic segment now; returns how many."""
    ids = list_dynamic_segment_ids()
    _enqueue_refreshes(ids)
    return len(ids)


HISTORY_DAYS = 400  # refresh history kept: a year of sizes, and the same weeks of last year


def prune_segment_history_job() -> int:
    """Delete refresh history older than HISTORY_DAYS (schedule it daily); returns how many."""
    return prune_segment_refreshes(before=timezone.now() - dt.timedelta(days=HISTORY_DAYS))


# Rule-made tags


def apply_tag_rules_job(as_of_iso: str | None = None) -> list[dict[str, Any]]:
    """Apply every active tag rule to every customer (schedule it, e.g. every 15 minutes)."""
    return [result.__dict__ for result in apply_tag_rules(as_of=_as_of(as_of_iso))]


def apply_tag_rule_job(tag_rule_id: int) -> list[dict[str, Any]]:
    return [result.__dict__ for result in apply_tag_rules(tag_rule_ids=[tag_rule_id])]


def enqueue_apply_tag_rule(tag_rule_id: int) -> None:
    _queue().enqueue(apply_tag_rule_job, tag_rule_id, job_timeout=REFRESH_TIMEOUT)


# After ingest
# settings.INGEST_LISTENERS names on_ingested: when orders, events or customers arrive, the
# touched customers' metrics, rule-made tags and segment memberships catch up within seconds,
# however many API batches or import chunks arrived, in one job.

TOUCHED_DELAY = dt.timedelta(seconds=5)  # gathers a burst of API batches into one run
TOUCHED_KEY = "yunying:segments:touched"  # a SET of customer ids waiting for the job
TOUCHED_ALL_KEY = "yunying:segments:touched-all"  # set when some arrivals listed no ids
TOUCHED_PENDING_KEY = "yunying:segments:touched-pending"
TOUCHED_PENDING_TTL = 120  # seconds; a lost job (worker killed) frees the slot after this
# Past this many touched customers one full refresh per segment costs less than the lists.
TOUCHED_FULL_REFRESH_OVER = 20_000


def refresh_touched_customers_job() -> dict[str, Any]:
    """Take the touched customers gathered by on_ingested and bring them up to date: their
    metrics, then the rule-made tags, then every dynamic segment (in that order, as tags and
    segments read metrics, and segments read tags)."""
    connection = django_rq.get_connection(SEGMENTS_QUEUE)
    with connection.pipeline(transaction=True) as pipe:
        pipe.smembers(TOUCHED_KEY)
        pipe.get(TOUCHED_ALL_KEY)
        pipe.delete(TOUCHED_KEY, TOUCHED_ALL_KEY, TOUCHED_PENDING_KEY)
        members, everyone, _deleted = pipe.execute()
    as_of = timezone.now()
    ids = sorted(int(member) for member in members)
    if everyone or len(ids) > TOUCHED_FULL_REFRESH_OVER:
        recompute_metrics(as_of=as_of)
        apply_tag_rules(as_of=as_of)
        return {"customers": None, "segments_queued": refresh_all_dynamic_segments_job()}
    if not ids:
        return {"customers": 0, "segments_changed": 0}
    recompute_metrics(as_of=as_of, customer_ids=ids)
    apply_tag_rules(as_of=as_of, customer_ids=ids)
    refreshes = refresh_for_customers(customer_ids=ids, as_of=as_of)
    return {"customers": len(ids), "segments_changed": len(refreshes)}


def on_ingested(kind: str, customer_ids: frozenset[int] | None) -> None:
    """Remember the touched customers and schedule one refresh_touched_customers_job unless one
    is already waiting (see TOUCHED_DELAY). None ("some customers") makes it a full refresh."""
    connection = django_rq.get_connection(SEGMENTS_QUEUE)
    if customer_ids is None:
        connection.set(TOUCHED_ALL_KEY, kind)
    elif customer_ids:
        connection.sadd(TOUCHED_KEY, *customer_ids)
    else:
        return
    if connection.set(TOUCHED_PENDING_KEY, kind, nx=True, ex=TOUCHED_PENDING_TTL):
        _queue().enqueue_in(TOUCHED_DELAY, refresh_touched_customers_job)
