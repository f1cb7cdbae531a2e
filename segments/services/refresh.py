"""Refreshing a segment's materialised membership: full, for touched customers, on schedule.

A refresh compiles the segment's rule tree (segments.rules.compile_rules) as of a time and runs
two set-based statements in one transaction: insert who joined, delete who left. The Segment row
is locked first (SELECT ... FOR UPDATE on PostgreSQL; SQLite's IMMEDIATE transactions hold the
database's write lock from BEGIN), so two refreshes of one segment take turns. A refresh that
fails (the rules became invalid, a database error) keeps the previous members, records the error
on the segment and in its history, and is never silent.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Iterable, Sequence
from typing import Any

from django.core.exceptions import ValidationError
from django.db import DatabaseError, transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext as _

from segments.models import Segment, SegmentKind, SegmentMember, SegmentRefresh
from segments.queries import count_segment_members, list_dynamic_segment_ids
from segments.rules import compile_rules
from segments.services.materialise import (
    db_datetime,
    delete_unmatched,
    describe_error,
    insert_matched,
    matched_sql,
    resolve_as_of,
    sync_matched,
)

logger = logging.getLogger(__name__)

FULL = "full"
CUSTOMERS = "customers"
SNAPSHOT = "snapshot"
# Customer ids bound into one statement of a touched-customers refresh: well under SQLite's
# 32,766 parameters, and an IN list PostgreSQL still plans as an index lookup.
CUSTOMER_CHUNK = 500


class SegmentIsFrozen(ValidationError):
    """A static segment keeps the snapshot it took; only an explicit re-snapshot replaces it."""

    def __init__(self, segment: Segment) -> None:
        super().__init__(
            _(
                "Segment %(name)s is static: its members are a snapshot. "
                "Take a new snapshot to replace them."
            )
            % {"name": segment.name},
            code="static",
        )


def _elapsed_ms(clock: float) -> int:
    return round((time.perf_counter() - clock) * 1000)


@transaction.atomic
def refresh_segment_members(
    *, segment_id: int, as_of: dt.datetime | None = None, resnapshot: bool = False
) -> SegmentRefresh:
    """Bring the segment's members in line with its rules as of as_of; returns the history row.

    A static segment is refreshed only for its first snapshot or with resnapshot=True (else
    SegmentIsFrozen). On failure the members stay as they were and the error is recorded on the
    segment (last_error) and the returned row; refreshed_at moves only on success.
    """
    as_of = resolve_as_of(as_of)
    started_at = timezone.now()
    clock = time.perf_counter()
    segment = Segment.objects.select_for_update().get(pk=segment_id)
    is_static = segment.kind == SegmentKind.STATIC
    if is_static and segment.refreshed_at is not None and not resnapshot:
        raise SegmentIsFrozen(segment)
    joined = left = 0
    error = ""
    try:
        # A savepoint: a statement that fails undoes both directions, and the previous members
        # are what the segment keeps.
        with transaction.atomic():
            matched = matched_sql(
                compile_rules(segment.definition, as_of=as_of, segment_id=segment.pk)
            )
            common: dict[str, Any] = {
                "table": SegmentMember,
                "owner_column": "segment_id",
                "owner_id": segment.pk,
            }
            joined, left = sync_matched(
                **common, matched=matched, values={"joined_at": db_datetime(as_of)}
            )
    except (ValidationError, DatabaseError) as exc:
        error = describe_error(exc)
        joined = left = 0
        logger.warning("refresh of segment %s failed: %s", segment.pk, error)
    size = count_segment_members(segment.pk)
    refresh = SegmentRefresh.objects.create(
        segment=segment,
        started_at=started_at,
        as_of=as_of,
        finished_at=timezone.now(),
        duration_ms=_elapsed_ms(clock),
        size=size,
        joined=joined,
        left=left,
        scope=SNAPSHOT if is_static else FULL,
        error=error,
    )
    changes: dict[str, object] = {
        "size": size,
        "last_error": error,
        "next_refresh_at": None
        if is_static
        else as_of + dt.timedelta(minutes=segment.refresh_interval_minutes),
    }
    if not error:
        changes["refreshed_at"] = as_of
    # update(), not save(): a refresh is not an edit, and updated_at stays the edit time.
    Segment.objects.filter(pk=segment.pk).update(**changes)
    return refresh


def _chunks(ids: Sequence[int], size: int) -> Iterable[list[int]]:
    for start in range(0, len(ids), size):
        yield list(ids[start : start + size])


def _refresh_one_for_customers(
    segment_id: int, customer_ids: Sequence[int], as_of: dt.datetime
) -> SegmentRefresh | None:
    started_at = timezone.now()
    clock = time.perf_counter()
    with transaction.atomic():
        segment = (
            Segment.objects.select_for_update()
            .filter(pk=segment_id, kind=SegmentKind.DYNAMIC)
            .first()
        )
        if segment is None:  # deleted, or made static, since the list was read
            return None
        joined = left = 0
        error = ""
        try:
            with transaction.atomic():
                compiled = compile_rules(segment.definition, as_of=as_of, segment_id=segment.pk)
                common: dict[str, Any] = {
                    "table": SegmentMember,
                    "owner_column": "segment_id",
                    "owner_id": segment.pk,
                }
                for chunk in _chunks(customer_ids, CUSTOMER_CHUNK):
                    matched = matched_sql(compiled.filter(pk__in=chunk))
                    left += delete_unmatched(**common, matched=matched, customer_ids=chunk)
                    joined += insert_matched(
                        **common, matched=matched, values={"joined_at": db_datetime(as_of)}
                    )
        except (ValidationError, DatabaseError) as exc:
            error = describe_error(exc)
            joined = left = 0
        # Nothing changed, or the same failure the segment already shows: no history row, or a
        # busy ingest would write one per segment every few seconds.
        if not error and not joined and not left:
            return None
        if error and error == segment.last_error:
            return None
        if error:
            logger.warning("refresh of segment %s for customers failed: %s", segment.pk, error)
        size = count_segment_members(segment.pk) if joined or left else segment.size
        refresh = SegmentRefresh.objects.create(
            segment=segment,
            started_at=started_at,
            as_of=as_of,
            finished_at=timezone.now(),
            duration_ms=_elapsed_ms(clock),
            size=size,
            joined=joined,
            left=left,
            scope=CUSTOMERS,
            error=error,
        )
        # A touched-customers refresh neither sets refreshed_at nor clears last_error: the rest
        # of the members are only as fresh as the last full refresh.
        changes: dict[str, object] = {"size": size}
        if error:
            changes["last_error"] = error
        Segment.objects.filter(pk=segment.pk).update(**changes)
        return refresh


def refresh_for_customers(
    *, customer_ids: Iterable[int], as_of: dt.datetime | None = None
) -> list[SegmentRefresh]:
    """Re-evaluate these customers against every dynamic segment, adding and removing only
    their SegmentMember rows; returns the history rows of the segments that changed or failed.

    Each segment is locked and changed in its own transaction, so a long list of segments never
    holds them all. Equal to a full refresh, for these customers.
    """
    as_of = resolve_as_of(as_of)
    ids = sorted(set(customer_ids))
    if not ids:
        return []
    refreshes = []
    for segment_id in list_dynamic_segment_ids():
        refresh = _refresh_one_for_customers(segment_id, ids, as_of)
        if refresh is not None:
            refreshes.append(refresh)
    return refreshes


@transaction.atomic
def claim_due_segments(*, now: dt.datetime | None = None) -> list[int]:
    """The ids of the dynamic segments due for their scheduled refresh, each moved on to its
    next time at once, so that the next tick does not queue them again while they wait.

    Segments being refreshed right now (locked) are skipped: that refresh sets their next time.
    """
    now = resolve_as_of(now)
    due = list(
        Segment.objects.filter(kind=SegmentKind.DYNAMIC)
        .filter(Q(next_refresh_at__isnull=True) | Q(next_refresh_at__lte=now))
        .select_for_update(skip_locked=True)
        .order_by("pk")
        .only("pk", "refresh_interval_minutes", "next_refresh_at")
    )
    for segment in due:
        segment.next_refresh_at = now + dt.timedelta(minutes=segment.refresh_interval_minutes)
    Segment.objects.bulk_update(due, ["next_refresh_at"])
    return [segment.pk for segment in due]


def prune_segment_refreshes(*, before: dt.datetime) -> int:
    """Delete the history rows of refreshes started before this time; returns how many.

    Segment by segment, so each delete walks the (segment, started_at) index.
    """
    deleted = 0
    for segment_id in Segment.objects.order_by("pk").values_list("pk", flat=True):
        count, _by_model = SegmentRefresh.objects.filter(
            segment_id=segment_id, started_at__lt=before
        ).delete()
        deleted += count
    return deleted
