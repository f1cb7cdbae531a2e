"""A segment's members as CSV rows, streamed from the database in chunks, never all in memory."""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator
from typing import Any

from django.utils import timezone
from django.utils.translation import get_language

from customers.templatetags.customer_contact import mask_email, mask_phone
from segments.models import SegmentMember

EXPORT_CHUNK = 2000  # rows fetched per round trip (a server-side cursor on PostgreSQL)
EXPORT_COLUMNS = ("external_id", "name", "phone", "email", "city", "tier", "joined_at")
# A cell starting with one of these is a formula to Excel; free text from a shop's data must not
# run as one on an operator's computer.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _text(value: str) -> str:
    return f"'{value}" if value.startswith(FORMULA_STARTS) else value


def iter_segment_export_rows(
    segment_id: int, *, can_view_contact: bool, language: str | None = None
) -> Iterator[list[str]]:
    """The header, then one row per member in customer order; phone and e-mail masked unless
    can_view_contact. The tier is named in the language (default: the active one, read now,
    not when a streaming response gets round to the rows); joined_at is local time."""
    is_chinese = (language or get_language() or "").startswith("zh")
    tier_name = f"customer__membership__tier__name_{'zh' if is_chinese else 'en'}"
    rows = (
        SegmentMember.objects.filter(segment_id=segment_id)
        .order_by("customer_id")
        .values_list(
            "customer__external_id",
            "customer__name",
            "customer__phone",
            "customer__email",
            "customer__city",
            tier_name,
            "joined_at",
        )
    )
    return _export_rows(rows.iterator(chunk_size=EXPORT_CHUNK), can_view_contact)


def _export_rows(rows: Iterator[tuple[Any, ...]], can_view_contact: bool) -> Iterator[list[str]]:
    yield list(EXPORT_COLUMNS)
    for external_id, name, phone, email, city, tier, joined_at in rows:
        yield [
            _text(external_id),
            _text(name),
            phone if can_view_contact else mask_phone(phone),
            email if can_view_contact else mask_email(email),
            _text(city),
            tier or "",
            timezone.localtime(joined_at).isoformat(timespec="seconds"),
        ]


class _Echo:
    """A file-like object whose write returns the line, for csv.writer in a generator."""

    def write(self, value: str) -> str:
        return value


def iter_csv_lines(rows: Iterable[list[str]]) -> Iterator[str]:
    """CSV text line by line, starting with a byte-order mark so Excel reads the UTF-8."""
    writer = csv.writer(_Echo())
    yield "\ufeff"
    for row in rows:
        yield writer.writerow(row)
