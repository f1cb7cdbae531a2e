"""Reads of the segments app: segment lists, members, refresh history (the size over time)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.db.models import QuerySet

from segments.models import Segment, SegmentKind, SegmentMember, SegmentRefresh

SIZE_HISTORY_LIMIT = 90  # refreshes shown by default: three months of daily refreshes


@dataclass(frozen=True)
class SizePoint:
    """One refresh as the size history shows it."""

    started_at: dt.datetime
    as_of: dt.datetime
    scope: str
    size: int
    joined: int
    left: int
    duration_ms: int
    error: str


def list_dynamic_segment_ids() -> list[int]:
    return list(
        Segment.objects.filter(kind=SegmentKind.DYNAMIC).order_by("pk").values_list("pk", flat=True)
    )


def list_segments() -> QuerySet[Segment]:
    return Segment.objects.select_related("owner").order_by("name")


def list_segment_members(segment_id: int) -> QuerySet[SegmentMember]:
    """The members in customer order (the (segment, customer) unique index serves it)."""
    return (
        SegmentMember.objects.filter(segment_id=segment_id)
        .select_related("customer")
        .order_by("customer_id")
    )


def list_segment_refreshes(segment_id: int, *, limit: int = SIZE_HISTORY_LIMIT) -> list[SizePoint]:
    """The latest refreshes of a segment, oldest first: its size history."""
    latest = SegmentRefresh.objects.filter(segment_id=segment_id).order_by("-started_at", "-id")
    rows = list(latest[:limit])
    return [
        SizePoint(
            started_at=row.started_at,
            as_of=row.as_of,
            scope=row.scope,
            size=row.size,
            joined=row.joined,
            left=row.left,
            duration_ms=row.duration_ms,
            error=row.error,
        )
        for row in reversed(rows)
    ]


def count_segment_members(segment_id: int) -> int:
    return SegmentMember.objects.filter(segment_id=segment_id).count()
