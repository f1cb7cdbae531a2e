"""A rule tree after validation: typed, normalised nodes the compiler, explain and evaluator walk.

Values are normalised here once: numbers of money fields are Decimal, of whole-number fields int,
of custom attributes float; dates are datetime.date; lists are tuples; windows are timedeltas.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from segments.rules.fields import FieldSpec

# The kind of a custom attribute's or an event property's comparison, from the value given.
TEXT_VALUE = "text"
NUMBER_VALUE = "number"
BOOL_VALUE = "bool"


@dataclass(frozen=True)
class GroupNode:
    path: str
    kind: str  # "all" or "any"
    children: tuple[Node, ...]


@dataclass(frozen=True)
class NotNode:
    path: str
    child: Node


@dataclass(frozen=True)
class FieldNode:
    path: str
    field: FieldSpec
    op: str
    value: Any = None
    # For custom attributes only: compare as text, number or yes/no (None: is_set / is_empty).
    value_kind: str | None = None


@dataclass(frozen=True)
class TagNode:
    path: str
    name: str
    is_present: bool


@dataclass(frozen=True)
class PropertyCondition:
    """A condition on one key of an event's properties (JSON)."""

    key: str
    op: str
    value: Any
    value_kind: str | None


@dataclass(frozen=True)
class CountCondition:
    op: str
    value: Any  # int, or (low, high) for between

    @property
    def is_at_least_one(self) -> bool:
        return (self.op == "gte" and self.value == 1) or (self.op == "gt" and self.value == 0)

    @property
    def is_none(self) -> bool:
        """True when only a count of 0 passes: the condition means "no such event"."""
        return (
            (self.op == "eq" and self.value == 0)
            or (self.op == "lt" and self.value == 1)
            or (self.op == "lte" and self.value == 0)
            or (self.op == "between" and self.value == (0, 0))
        )


AT_LEAST_ONE = CountCondition(op="gte", value=1)


@dataclass(frozen=True)
class FollowUp:
    """The event that must (or must not) come after the leaf's event, within `window` of it."""

    name: str
    window: dt.timedelta
    where: tuple[PropertyCondition, ...]


@dataclass(frozen=True)
class EventNode:
    path: str
    name: str
    window: dt.timedelta | None  # None: every event up to as_of
    where: tuple[PropertyCondition, ...]
    count: CountCondition
    followed_by: FollowUp | None
    not_followed_by: FollowUp | None

    @property
    def is_sequence(self) -> bool:
        return self.followed_by is not None or self.not_followed_by is not None


@dataclass(frozen=True)
class SegmentNode:
    path: str
    segment_id: int
    name: str
    # A dynamic segment's rules are compiled in line (so they honour as_of); a static segment is
    # its stored members.
    definition: Node | None


Node = GroupNode | NotNode | FieldNode | TagNode | EventNode | SegmentNode


def describe_value(value: Any) -> Any:
    """A normalised value as JSON (dates as ISO text, Decimals as text, tuples as lists)."""
    if isinstance(value, tuple | list):
        return [describe_value(item) for item in value]
    if isinstance(value, dt.date | dt.datetime):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)
