"""Compile a rule tree to ONE queryset of customers, evaluated in the database as of a time.

Every leaf compiles to a condition that is never NULL (so "not" is the plain complement, also for
customers with missing values): a comparison on a column that can be NULL carries "IS NOT NULL".
Groups are AND / OR / NOT of their children; an empty "all" matches everyone and an empty "any"
nobody. Values are always bound parameters.

Where values come from:
- profile, consent: Customer's columns; metrics: CustomerMetrics through a LEFT JOIN (a customer
  without a metrics row reads as the model's defaults: 0 orders and spend, "unclassified",
  "prospect", ""; null dates and scores); tier and points: loyalty's Membership, LEFT JOIN (no
  membership: no tier, 0 points). These are the current state: as_of does not rewind them.
- as_of anchors every relative time: date ops (within_last_days, more_than_days_ago), age,
  days_since_last_order (from last_order_at: whole days between its local date and as_of's),
  and event windows. Days and dates are in settings.TIME_ZONE.
- text contains / starts_with ignore the case of A-Z (SQLite's LIKE folds nothing else).
- attr.<key>: a text value compares with JSON strings, a number with JSON numbers, true/false and
  is_true / is_false with JSON booleans; a value of another JSON type never matches (so "ne" and
  "not_in" hold for it). is_set: the key holds something other than null or "".
- event leaves match Event rows only (an "order" event leaf matches events named "order", not
  Order rows): events at or before as_of, after as_of - within_days/hours when a window is given,
  whose properties match "where". count defaults to "at least one"; a count that 0 satisfies (eq 0,
  lt 3, ...) also matches customers with no such event.
- sequences: an event is followed by B within H hours when some B happens in
  (event, event + H], at or before as_of. not_followed_by keeps the events with no such B; an event
  whose H hours have not run out by as_of counts as not followed (yet).
- {"segment": id}: a dynamic segment's rules are compiled in line (honouring as_of); a static
  segment is its stored members.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import replace
from typing import Any
from zoneinfo import ZoneInfo

from django.conf import settings
from django.db.models import (
    BooleanField,
    Count,
    Exists,
    F,
    OuterRef,
    Q,
    QuerySet,
    Value,
)
from django.db.models.lookups import (
    Exact,
    GreaterThan,
    GreaterThanOrEqual,
    IContains,
    In,
    IsNull,
    IStartsWith,
    LessThan,
    LessThanOrEqual,
)
from django.utils import timezone

from customers.models import Customer, CustomerTag, Event
from segments.models import SegmentMember
from segments.rules.evaluate import compare_number, in_choices
from segments.rules.expressions import JsonKeyBool, JsonKeyNumber, JsonKeyText, JsonKeyType
from segments.rules.fields import (
    AGE,
    ATTRIBUTE,
    BOOL,
    CHOICE,
    COLUMN,
    DATE,
    DAYS_SINCE,
    NOT_BLANK,
    NOT_NULL,
    NUMBER,
    TEXT,
    FieldSpec,
)
from segments.rules.nodes import (
    BOOL_VALUE,
    NUMBER_VALUE,
    TEXT_VALUE,
    CountCondition,
    EventNode,
    FieldNode,
    FollowUp,
    GroupNode,
    Node,
    NotNode,
    PropertyCondition,
    SegmentNode,
    TagNode,
)
from segments.rules.validation import parse_rules

Condition = Q | bool  # True / False: a group folded to "everyone" / "nobody"

COMPARISONS: dict[str, type[Any]] = {
    "eq": Exact,
    "gt": GreaterThan,
    "gte": GreaterThanOrEqual,
    "lt": LessThan,
    "lte": LessThanOrEqual,
}
# Ops that are the complement of another: compiled as NOT of it, so missing values land on the
# side of the complement ("city ne 上海" includes customers without a city).
NEGATED_OPS = {"ne": "eq", "not_in": "in", "is_empty": "is_set"}
# Never true, never NULL, and kept in the SQL (an empty IN would make Django drop the query).
NOTHING = Q(Value(False, output_field=BooleanField()))


def check_as_of(as_of: dt.datetime) -> dt.datetime:
    if not isinstance(as_of, dt.datetime) or timezone.is_naive(as_of):
        raise ValueError(f"as_of must be an aware datetime, not {as_of!r}")
    return as_of


def compile_rules(
    tree: dict[str, Any], *, as_of: dt.datetime, segment_id: int | None = None
) -> QuerySet[Customer]:
    """The customers the tree matches as of as_of, as one lazy queryset (nothing runs yet).

    Raises RulesInvalid (with every error and its path) for a bad tree, a missing segment or a
    segment reference that leads back to segment_id (the segment being defined).
    """
    node = parse_rules(tree, segment_id=segment_id)
    return Customer.objects.filter(compile_node(node, as_of=as_of))


def restrict_to(queryset: QuerySet[Customer], customer_ids: Iterable[int]) -> QuerySet[Customer]:
    """The compiled queryset limited to some customers (an incremental refresh's touched ones)."""
    return queryset.filter(pk__in=list(customer_ids))


def compile_node(node: Node, *, as_of: dt.datetime) -> Q:
    """A node as one Q on Customer (always usable in filter(), also when it matches nobody)."""
    condition = _compile(node, check_as_of(as_of))
    if condition is True:
        return Q()
    if condition is False:
        return NOTHING
    return condition


def _compile(node: Node, as_of: dt.datetime) -> Condition:
    if isinstance(node, GroupNode):
        parts = [_compile(child, as_of) for child in node.children]
        if node.kind == "all":
            if any(part is False for part in parts):
                return False
            queries = [part for part in parts if not isinstance(part, bool)]
            return Q(*queries, _connector=Q.AND) if queries else True
        if any(part is True for part in parts):
            return True
        queries = [part for part in parts if not isinstance(part, bool)]
        return Q(*queries, _connector=Q.OR) if queries else False
    if isinstance(node, NotNode):
        inner = _compile(node.child, as_of)
        return (not inner) if isinstance(inner, bool) else ~inner
    if isinstance(node, FieldNode):
        return field_condition(node, as_of)
    if isinstance(node, TagNode):
        return tag_condition(node)
    if isinstance(node, EventNode):
        return event_condition(node, as_of)
    return segment_condition(node, as_of)


# -- fields


def _guarded(condition: Q, expression: Any, *, is_nullable: bool) -> Q:
    """condition AND expression IS NOT NULL: never NULL, so its NOT is the complement."""
    return condition & Q(IsNull(expression, False)) if is_nullable else condition


def _compare(expression: Any, op: str, value: Any, *, is_nullable: bool) -> Q:
    if op == "between":
        low, high = value
        return _guarded(
            Q(GreaterThanOrEqual(expression, low)) & Q(LessThanOrEqual(expression, high)),
            expression,
            is_nullable=is_nullable,
        )
    if op == "in":
        return _guarded(Q(In(expression, list(value))), expression, is_nullable=is_nullable)
    return _guarded(Q(COMPARISONS[op](expression, value)), expression, is_nullable=is_nullable)


def _with_default(spec: FieldSpec, condition: Q, holds_for_default: bool) -> Q:
    """Add the customers without the related row when the field's default passes the test."""
    if spec.relation is None or spec.default is None or not holds_for_default:
        return condition
    return condition | Q(IsNull(F(f"{spec.relation}__pk"), True))


def field_condition(node: FieldNode, as_of: dt.datetime) -> Q:
    op = node.op
    if op in NEGATED_OPS:
        return ~field_condition(replace(node, op=NEGATED_OPS[op]), as_of)
    spec = node.field
    if spec.type == NUMBER:
        return _number_condition(spec, op, node.value, as_of)
    if spec.type == TEXT:
        return _text_condition(F(spec.column), op, node.value, is_nullable=spec.is_nullable)
    if spec.type == DATE:
        return _date_condition(spec, op, node.value, as_of)
    if spec.type == BOOL:
        return _bool_condition(spec, op)
    if spec.type == CHOICE:
        expression = F(spec.column)
        condition = _compare(
            expression, "in", node.value, is_nullable=spec.is_nullable or spec.relation is not None
        )
        return _with_default(spec, condition, in_choices(spec.default, node.value))
    if spec.type == ATTRIBUTE:
        return json_condition(spec.column, spec.json_key, op, node.value, node.value_kind)
    raise AssertionError(f"no compiler for field type {spec.type}")


def _number_condition(spec: FieldSpec, op: str, value: Any, as_of: dt.datetime) -> Q:
    if spec.derivation == AGE:
        return _age_condition(F(spec.column), op, value, local_date(as_of))
    if spec.derivation == DAYS_SINCE:
        return _days_since_condition(F(spec.column), op, value, local_date(as_of))
    assert spec.derivation == COLUMN
    condition = _compare(
        F(spec.column), op, value, is_nullable=spec.is_nullable or spec.relation is not None
    )
    holds = spec.default is not None and compare_number(op, spec.default, value)
    return _with_default(spec, condition, holds)


def _whole_number_bounds(op: str, value: Any) -> tuple[int | None, int | None]:
    """The ops on a whole-number quantity as an inclusive range [low, high] (None: open)."""
    if op == "between":
        return value[0], value[1]
    return {
        "eq": (value, value),
        "gt": (value + 1, None),
        "gte": (value, None),
        "lt": (None, value - 1),
        "lte": (None, value),
    }[op]


def _range(expression: Any, low: Any, high: Any, *, high_is_open: bool) -> Q:
    condition = Q(IsNull(expression, False))
    if low is not None:
        condition &= Q(GreaterThanOrEqual(expression, low))
    if high is not None:
        lookup = LessThan if high_is_open else LessThanOrEqual
        condition &= Q(lookup(expression, high))
    return condition


def years_before(day: dt.date, years: int) -> dt.date:
    """The same day `years` earlier; 29 February becomes the 28th in a common year."""
    try:
        return day.replace(year=day.year - years)
    except ValueError:
        return day.replace(year=day.year - years, day=28)


def _age_condition(birth_date: Any, op: str, value: Any, today: dt.date) -> Q:
    # Someone is at least N years old on `today` when born on or before the same day N years
    # earlier: a range on birth_date that its index can serve.
    low_age, high_age = _whole_number_bounds(op, value)
    # age >= low  <=>  birth_date <= years_before(today, low)
    # age <= high <=>  birth_date >  years_before(today, high + 1)
    latest = years_before(today, low_age) if low_age is not None else None
    earliest_excluded = years_before(today, high_age + 1) if high_age is not None else None
    condition = Q(IsNull(birth_date, False))
    if latest is not None:
        condition &= Q(LessThanOrEqual(birth_date, latest))
    if earliest_excluded is not None:
        condition &= Q(GreaterThan(birth_date, earliest_excluded))
    return condition


def _days_since_condition(moment: Any, op: str, value: Any, today: dt.date) -> Q:
    # days = today - local date of the moment; days >= N <=> moment < start of (today - N + 1),
    # days <= N <=> moment >= start of (today - N).
    low_days, high_days = _whole_number_bounds(op, value)
    before = start_of_day(today - dt.timedelta(days=low_days - 1)) if low_days is not None else None
    from_ = start_of_day(today - dt.timedelta(days=high_days)) if high_days is not None else None
    return _range(moment, from_, before, high_is_open=True)


def _text_condition(expression: Any, op: str, value: Any, *, is_nullable: bool) -> Q:
    if op in ("eq", "in"):
        return _compare(expression, op, value, is_nullable=is_nullable)
    if op == "contains":
        return _guarded(Q(IContains(expression, value)), expression, is_nullable=is_nullable)
    if op == "starts_with":
        return _guarded(Q(IStartsWith(expression, value)), expression, is_nullable=is_nullable)
    if op == "is_set":
        return _guarded(~Q(Exact(expression, "")), expression, is_nullable=is_nullable)
    raise AssertionError(f"no text op {op}")


def local_date(moment: dt.datetime) -> dt.date:
    return timezone.localtime(moment, ZoneInfo(settings.TIME_ZONE)).date()


def start_of_day(day: dt.date) -> dt.datetime:
    """The first instant of a day in settings.TIME_ZONE."""
    return dt.datetime.combine(day, dt.time.min, tzinfo=ZoneInfo(settings.TIME_ZONE))


def _date_condition(spec: FieldSpec, op: str, value: Any, as_of: dt.datetime) -> Q:
    """A date is a whole local day: "before 2025-03-01" ends at its first instant, "after" starts
    at the next day's; windows run back from as_of, half-open on the left like the metrics'."""
    expression = F(spec.column)
    if spec.is_date_only:
        today = local_date(as_of)
        one_day = dt.timedelta(days=1)
        low, high = {
            "before": (None, value - one_day if op == "before" else None),
            "after": (value + one_day if op == "after" else None, None),
            "between": value if op == "between" else (None, None),
            "within_last_days": (
                today - dt.timedelta(days=value) + one_day if op == "within_last_days" else None,
                today,
            ),
            "more_than_days_ago": (
                None,
                today - dt.timedelta(days=value) if op == "more_than_days_ago" else None,
            ),
        }[op]
        return _range(expression, low, high, high_is_open=False)
    if op == "before":
        return _range(expression, None, start_of_day(value), high_is_open=True)
    if op == "after":
        return _range(
            expression, start_of_day(value + dt.timedelta(days=1)), None, high_is_open=True
        )
    if op == "between":
        return _range(
            expression,
            start_of_day(value[0]),
            start_of_day(value[1] + dt.timedelta(days=1)),
            high_is_open=True,
        )
    if op == "within_last_days":
        return (
            Q(IsNull(expression, False))
            & Q(GreaterThan(expression, as_of - dt.timedelta(days=value)))
            & Q(LessThanOrEqual(expression, as_of))
        )
    if op == "more_than_days_ago":
        return _range(expression, None, as_of - dt.timedelta(days=value), high_is_open=False)
    raise AssertionError(f"no date op {op}")


def _bool_condition(spec: FieldSpec, op: str) -> Q:
    expression = F(spec.column)
    if spec.derivation == NOT_BLANK:
        is_set = ~Q(Exact(expression, ""))
        return is_set if op == "is_true" else ~is_set
    if spec.derivation == NOT_NULL:
        return Q(IsNull(expression, op != "is_true"))
    return Q(Exact(expression, op == "is_true"))


# -- JSON keys (custom attributes, event properties)


def json_condition(column: str, key: str, op: str, value: Any, value_kind: str | None) -> Q:
    if op in NEGATED_OPS:
        return ~json_condition(column, key, NEGATED_OPS[op], value, value_kind)
    if op == "is_set":
        kind = JsonKeyType(column, key)
        text = JsonKeyText(column, key)
        return (
            Q(In(kind, ["string", "number", "boolean", "array", "object"]))
            & Q(IsNull(kind, False))
            & ~(Q(Exact(text, "")) & Q(IsNull(text, False)))
        )
    if op in ("is_true", "is_false"):
        flag = JsonKeyBool(column, key)
        return Q(Exact(flag, op == "is_true")) & Q(IsNull(flag, False))
    if value_kind == BOOL_VALUE:
        flag = JsonKeyBool(column, key)
        return Q(Exact(flag, bool(value))) & Q(IsNull(flag, False))
    if value_kind == NUMBER_VALUE:
        return _compare(JsonKeyNumber(column, key), op, value, is_nullable=True)
    assert value_kind == TEXT_VALUE
    return _text_condition(JsonKeyText(column, key), op, value, is_nullable=True)


def _property_filter(conditions: tuple[PropertyCondition, ...]) -> Q:
    condition = Q()
    for item in conditions:
        condition &= json_condition("properties", item.key, item.op, item.value, item.value_kind)
    return condition


# -- tags, events, segments


def tag_condition(node: TagNode) -> Q:
    has_tag = Q(Exists(CustomerTag.objects.filter(customer_id=OuterRef("pk"), tag__name=node.name)))
    return has_tag if node.is_present else ~has_tag


def _follow_ups(follow_up: FollowUp, as_of: dt.datetime) -> QuerySet[Event]:
    """The follow-up events of the outer event (same customer, within the window after it)."""
    return (
        Event.objects.filter(
            customer_id=OuterRef("customer_id"),
            name=follow_up.name,
            occurred_at__gt=OuterRef("occurred_at"),
        )
        .filter(occurred_at__lte=OuterRef("occurred_at") + Value(follow_up.window))
        .filter(occurred_at__lte=as_of)
        .filter(_property_filter(follow_up.where))
    )


def matching_events(
    node: EventNode, *, as_of: dt.datetime, customer: Any = None, with_follow_ups: bool = True
) -> QuerySet[Event]:
    """The events an event leaf counts; customer: an id, OuterRef("pk"), or None for everyone's."""
    events = Event.objects.filter(name=node.name, occurred_at__lte=as_of)
    if customer is not None:
        events = events.filter(customer_id=customer)
    if node.window is not None:
        events = events.filter(occurred_at__gt=as_of - node.window)
    events = events.filter(_property_filter(node.where))
    if with_follow_ups and node.followed_by is not None:
        events = events.filter(Exists(_follow_ups(node.followed_by, as_of)))
    if with_follow_ups and node.not_followed_by is not None:
        events = events.filter(~Exists(_follow_ups(node.not_followed_by, as_of)))
    return events.order_by()


def _count_filter(count: CountCondition, name: str) -> Q:
    if count.op == "between":
        low, high = count.value
        return Q(**{f"{name}__gte": low, f"{name}__lte": high})
    if count.op == "ne":
        return ~Q(**{name: count.value})
    lookup = "exact" if count.op == "eq" else count.op
    return Q(**{f"{name}__{lookup}": count.value})


def event_condition(node: EventNode, as_of: dt.datetime) -> Q:
    count = node.count
    if count.is_at_least_one:
        return Q(Exists(matching_events(node, as_of=as_of, customer=OuterRef("pk"))))
    if count.is_none:
        return ~Q(Exists(matching_events(node, as_of=as_of, customer=OuterRef("pk"))))
    if not compare_number(count.op, 0, count.value):
        # Customers with at least one event can pass: one grouped pass over the events, which
        # PostgreSQL joins as a semi-join.
        passing = (
            matching_events(node, as_of=as_of)
            .values("customer_id")
            .annotate(matched=Count("pk"))
            .filter(_count_filter(count, "matched"))
            .values("customer_id")
        )
        return Q(pk__in=passing)
    # 0 passes: everyone but the customers whose (non-zero) count fails. NOT EXISTS, correlated,
    # so customers without events never meet a NOT IN over a large set.
    failing = (
        matching_events(node, as_of=as_of, customer=OuterRef("pk"))
        .values("customer_id")
        .annotate(matched=Count("pk"))
        .filter(~_count_filter(count, "matched"))
    )
    return ~Q(Exists(failing))


def segment_condition(node: SegmentNode, as_of: dt.datetime) -> Condition:
    if node.definition is not None:
        return _compile(node.definition, as_of)
    return Q(
        Exists(SegmentMember.objects.filter(segment_id=node.segment_id, customer_id=OuterRef("pk")))
    )
