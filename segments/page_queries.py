"""Reads of the segment pages and the rule builder: the list with each segment's recent sizes,
the detail page's members and history, "where it's used", and the values the builder offers
(cities, tags, event names, event property keys) known from the data."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from django.db import connection
from django.db.models import F, QuerySet, Window
from django.db.models.functions import RowNumber

from customers.models import Customer, Event, Tag
from customers.queries import list_known_cities
from segments.models import Segment, SegmentRefresh
from segments.queries import list_segments

SPARKLINE_REFRESHES = 20  # the list's trend line: the last 20 refreshes of each segment
MAX_KNOWN_EVENT_NAMES = 500  # a guard on the index walk below, far above any shop's event list
TAG_SUGGESTIONS = 20  # a typeahead shows a screenful
PROPERTY_SAMPLE_EVENTS = 200  # the property keys offered come from the latest events of a name
MAX_PROPERTY_KEYS = 50

VALUE_KINDS = ("city", "tag", "event", "event_property")


@dataclass(frozen=True)
class SegmentRow:
    """A segment as the list shows it: its last refreshes (oldest first) for the trend line."""

    segment: Segment
    refreshes: tuple[SegmentRefresh, ...]

    @property
    def sizes(self) -> list[int]:
        # A failed refresh measured nothing: the line skips it rather than dropping to zero.
        return [refresh.size for refresh in self.refreshes if not refresh.error]

    @property
    def last_refresh(self) -> SegmentRefresh | None:
        return self.refreshes[-1] if self.refreshes else None


def list_segment_rows() -> list[SegmentRow]:
    """Every segment with its last SPARKLINE_REFRESHES refreshes, in two queries."""
    segments = list(list_segments())
    latest = (
        SegmentRefresh.objects.annotate(
            position=Window(
                RowNumber(),
                partition_by=[F("segment_id")],
                order_by=[F("started_at").desc(), F("id").desc()],
            )
        )
        .filter(position__lte=SPARKLINE_REFRESHES)
        .order_by("segment_id", "started_at", "id")
    )
    by_segment: dict[int, list[SegmentRefresh]] = defaultdict(list)
    for refresh in latest:
        by_segment[refresh.segment_id].append(refresh)
    return [SegmentRow(segment, tuple(by_segment.get(segment.pk, ()))) for segment in segments]


def get_segment(segment_id: int) -> Segment | None:
    return Segment.objects.select_related("owner").filter(pk=segment_id).first()


def list_template_segments() -> list[Segment]:
    return list(
        Segment.objects.filter(is_template=True)
        .only("pk", "name", "description", "definition")
        .order_by("name")
    )


def list_segment_choices(*, exclude_id: int | None = None) -> list[dict[str, Any]]:
    """The segments a rule may refer to: id, name and kind."""
    segments = Segment.objects.order_by("name")
    if exclude_id is not None:
        segments = segments.exclude(pk=exclude_id)
    return [
        {"id": pk, "name": name, "kind": kind}
        for pk, name, kind in segments.values_list("id", "name", "kind")
    ]


def find_customer(text: str) -> tuple[Customer | None, int]:
    """The customer an operator means by an external id, an id or a name.

    Returns the customer (or None) and how many customers carry that name when the name alone
    is ambiguous (0 otherwise).
    """
    text = text.strip()
    if not text or "\x00" in text:  # a NUL can match nobody, and PostgreSQL refuses it
        return None, 0
    customer = Customer.objects.filter(external_id=text).first()
    # isdigit() alone admits "²", which int() refuses.
    if customer is None and text.isascii() and text.isdigit():
        customer = Customer.objects.filter(pk=int(text)).first()
    if customer is not None:
        return customer, 0
    named = list(Customer.objects.filter(name=text).order_by("pk")[:2])
    if len(named) == 1:
        return named[0], 0
    return None, Customer.objects.filter(name=text).count() if named else 0


def list_known_event_names() -> list[str]:
    """The distinct event names, by a walk of the (name, occurred_at) index.

    As customers.queries.list_known_cities: one index probe per name, not a scan of the events.
    """
    table = connection.ops.quote_name(Event._meta.db_table)
    sql = f"""
        WITH RECURSIVE names(name, depth) AS (
            SELECT (SELECT MIN(name) FROM {table} WHERE name > ''), 1
            UNION ALL
            SELECT (SELECT MIN(e.name) FROM {table} e WHERE e.name > names.name), depth + 1
            FROM names WHERE names.name IS NOT NULL AND depth < %s
        )
        SELECT name FROM names WHERE name IS NOT NULL
    """  # noqa: S608 - the table name comes from the model, the limit is a parameter
    with connection.cursor() as cursor:
        cursor.execute(sql, [MAX_KNOWN_EVENT_NAMES])
        return [row[0] for row in cursor.fetchall()]


def list_event_property_keys(event_name: str) -> list[str]:
    """The property keys seen on the latest events of a name, sorted."""
    latest: QuerySet[Event, Any] = (
        Event.objects.filter(name=event_name)
        .order_by("-occurred_at")
        .values_list("properties", flat=True)[:PROPERTY_SAMPLE_EVENTS]
    )
    keys: set[str] = set()
    for properties in latest:
        if isinstance(properties, dict):
            keys.update(str(key) for key in properties)
    return sorted(keys)[:MAX_PROPERTY_KEYS]


def search_tag_names(text: str, *, limit: int = TAG_SUGGESTIONS) -> list[str]:
    """Tag names containing text (all tags when text is empty), by name."""
    tags = Tag.objects.order_by("name")
    if text:
        tags = tags.filter(name__icontains=text)
    return list(tags.values_list("name", flat=True)[:limit])


def list_known_values(kind: str, *, text: str = "", event: str = "") -> list[str]:
    """The values the builder offers for a kind of input (see VALUE_KINDS)."""
    # Typed into a search box: a NUL can match nothing, and PostgreSQL refuses it in a query.
    text, event = text.replace("\x00", ""), event.replace("\x00", "")
    if kind == "city":
        return list_known_cities()
    if kind == "tag":
        return search_tag_names(text)
    if kind == "event":
        return list_known_event_names()
    if kind == "event_property":
        return list_event_property_keys(event) if event else []
    raise ValueError(f"unknown kind of values: {kind}")
