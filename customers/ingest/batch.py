"""One batch of orders or events from the ingest API: all of it is written, or none of it.

Items are checked with the same rules as a CSV row (rows.py) and written with the same set-based
writer (store.py), so a batch costs a fixed number of statements whatever its size. Unlike the
CSV import, a batch is all or nothing: any bad item (a value that does not parse, an unknown
customer, an id repeated within the batch) rejects the whole batch with every error listed, and
the caller sends it again once fixed. Ids already stored are skipped, so a replay changes nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import transaction

from customers.ingest import store
from customers.ingest.hooks import notify_ingested
from customers.ingest.rows import EVENTS, ORDERS, Schema, parse_item

BATCH_SCHEMAS: dict[str, Schema[Any]] = {schema.kind: schema for schema in (ORDERS, EVENTS)}


class BatchTooLarge(ValueError):
    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"a batch holds at most {limit} items; this one has {size}")
        self.size = size
        self.limit = limit


@dataclass(frozen=True, slots=True)
class ItemError:
    index: int
    field: str | None
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return {"index": self.index, "field": self.field, "reason": self.reason}


@dataclass(frozen=True, slots=True)
class BatchResult:
    kind: str
    received: int
    created: int = 0
    already_present: int = 0
    updated: int = 0  # orders whose status changed (paid -> refunded)
    # Non-empty means the batch was rejected and nothing was written.
    errors: tuple[ItemError, ...] = ()
    # The customers whose rows this batch inserted, for follow-up work (metrics, segments).
    customer_ids: frozenset[int] = frozenset()

    @property
    def is_accepted(self) -> bool:
        return not self.errors

    def counts(self) -> dict[str, int]:
        return {
            "received": self.received,
            "created": self.created,
            "updated": self.updated,
            "already_present": self.already_present,
        }


def max_batch_size() -> int:
    return int(settings.INGEST_MAX_BATCH)


def ingest_batch(*, kind: str, items: Sequence[object]) -> BatchResult:
    """Write a batch of "orders" or "events" items in one transaction, or nothing if any is bad.

    Raises BatchTooLarge past settings.INGEST_MAX_BATCH items and ValueError for another kind.
    """
    try:
        schema = BATCH_SCHEMAS[kind]
    except KeyError:
        raise ValueError(f"unknown batch kind {kind!r}") from None
    limit = max_batch_size()
    if len(items) > limit:
        raise BatchTooLarge(len(items), limit)
    errors: list[ItemError] = []
    rows: list[tuple[int, Any]] = []
    for index, item in enumerate(items):
        parsed = parse_item(schema, item)
        if isinstance(parsed, list):
            errors += [ItemError(index, error.field, error.reason) for error in parsed]
        else:
            rows.append((index, parsed))
    if not rows:
        return BatchResult(kind=kind, received=len(items), errors=tuple(errors))
    with transaction.atomic():
        with store.writer_for(kind) as writer:
            # With bad items already found, the writer only checks customers and repeated ids.
            written = writer.write(rows, is_dry_run=bool(errors))
        errors += [
            ItemError(
                row, schema.id_field, f"duplicate {schema.id_field}: item {first} has it first"
            )
            for row, first in written.repeated
        ]
        errors += [
            ItemError(problem.row, problem.field, problem.reason) for problem in written.problems
        ]
        if errors:
            transaction.set_rollback(True)
            errors.sort(key=lambda error: error.index)
            return BatchResult(kind=kind, received=len(items), errors=tuple(errors))
    notify_ingested(kind=kind, customer_ids=written.customer_ids)
    return BatchResult(
        kind=kind,
        received=len(items),
        created=written.inserted,
        already_present=written.unchanged,
        updated=written.updated,
        customer_ids=frozenset(written.customer_ids),
    )
