"""A plain-Python evaluator of the rule language: the reference the compiled SQL is tested against.

It reads snapshots of customers (CustomerData, loaded by load_customers) and decides each rule the
way compiler.py documents, written the obvious way: one customer at a time, in Python. It is for
tests and for explain's displayed values, never for building segments (that is set-based SQL).
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from django.conf import settings
from django.utils import timezone

from customers.models import Customer, CustomerMetrics, CustomerTag, Event
from loyalty.models import Membership
from segments.models import SegmentMember
from segments.rules.fields import (
    AGE,
    ATTRIBUTE,
    BOOL,
    CHOICE,
    DATE,
    DAYS_SINCE,
    JSON_KEY,
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

MISSING: Any = object()  # a JSON key that is not there


@dataclass(frozen=True)
class EventData:
    name: str
    occurred_at: dt.datetime
    properties: Any


@dataclass
class CustomerData:
    """One customer as the rules see them: columns, metrics and membership rows, tags, events."""

    id: int
    columns: dict[str, Any]
    metrics: dict[str, Any] | None = None
    membership: dict[str, Any] | None = None
    tags: set[str] = field(default_factory=set)
    events: list[EventData] = field(default_factory=list)
    static_segments: set[int] = field(default_factory=set)


CUSTOMER_COLUMNS = (
    "id",
    "name",
    "external_id",
    "city",
    "channel",
    "gender",
    "birth_date",
    "registered_at",
    "last_seen_at",
    "phone",
    "email",
    "wechat_openid",
    "sms_opt_in",
    "email_opt_in",
    "push_opt_in",
    "wechat_opt_in",
    "unsubscribed_at",
    "attributes",
)
MEMBERSHIP_COLUMNS = ("tier__code", "points_balance", "tier_since")


def load_customers(
    customer_ids: Iterable[int] | None = None, *, with_events: bool = True
) -> list[CustomerData]:
    """Snapshots of some customers (all when customer_ids is None), for tests and explain."""
    customers = Customer.objects.order_by("pk")
    if customer_ids is not None:
        customers = customers.filter(pk__in=list(customer_ids))
    found = {
        row["id"]: CustomerData(id=row["id"], columns=row)
        for row in customers.values(*CUSTOMER_COLUMNS)
    }
    ids = list(found)
    metric_names = [f.name for f in CustomerMetrics._meta.concrete_fields if f.name != "customer"]
    for row in CustomerMetrics.objects.filter(customer_id__in=ids).values(
        "customer_id", *metric_names
    ):
        found[row["customer_id"]].metrics = row
    for row in Membership.objects.filter(customer_id__in=ids).values(
        "customer_id", *MEMBERSHIP_COLUMNS
    ):
        found[row["customer_id"]].membership = row
    for customer_id, tag_name in CustomerTag.objects.filter(customer_id__in=ids).values_list(
        "customer_id", "tag__name"
    ):
        found[customer_id].tags.add(tag_name)
    if with_events:
        events: dict[int, list[EventData]] = defaultdict(list)
        for customer_id, name, occurred_at, properties in Event.objects.filter(
            customer_id__in=ids
        ).values_list("customer_id", "name", "occurred_at", "properties"):
            events[customer_id].append(EventData(name, occurred_at, properties))
        for customer_id, rows in events.items():
            found[customer_id].events = rows
    for segment_id, customer_id in SegmentMember.objects.filter(customer_id__in=ids).values_list(
        "segment_id", "customer_id"
    ):
        found[customer_id].static_segments.add(segment_id)
    return list(found.values())


# -- values


def local_date(moment: dt.datetime) -> dt.date:
    return timezone.localtime(moment, ZoneInfo(settings.TIME_ZONE)).date()


def age_on(birth_date: dt.date, day: dt.date) -> int:
    return day.year - birth_date.year - ((day.month, day.day) < (birth_date.month, birth_date.day))


def stored_value(spec: FieldSpec, customer: CustomerData) -> Any:
    """The column behind a field, with the relation's default when its row is missing."""
    if spec.relation is None:
        return customer.columns[spec.column]
    row = customer.metrics if spec.relation == "metrics" else customer.membership
    if row is None:
        return spec.default if spec.derivation != DAYS_SINCE else None
    return row[spec.column[len(spec.relation) + 2 :]]


def field_value(spec: FieldSpec, customer: CustomerData, as_of: dt.datetime) -> Any:
    """The value a field reads for a customer as of a time (MISSING: an absent JSON key)."""
    if spec.derivation == JSON_KEY:
        attributes = customer.columns["attributes"]
        return attributes.get(spec.json_key, MISSING) if isinstance(attributes, dict) else MISSING
    raw = stored_value(spec, customer)
    if spec.derivation == AGE:
        return None if raw is None else age_on(raw, local_date(as_of))
    if spec.derivation == DAYS_SINCE:
        return None if raw is None else (local_date(as_of) - local_date(raw)).days
    if spec.derivation == NOT_BLANK:
        return raw != ""
    if spec.derivation == NOT_NULL:
        return raw is not None
    return raw


# -- ops


def compare_number(op: str, actual: Any, value: Any) -> bool:
    """A number op on a value that may be missing (None): only "ne" holds for a missing one."""
    if op == "ne":
        return not compare_number("eq", actual, value)
    if actual is None:
        return False
    if op == "between":
        return bool(value[0] <= actual <= value[1])
    if op == "in":
        return actual in value
    return bool(
        {
            "eq": actual == value,
            "gt": actual > value,
            "gte": actual >= value,
            "lt": actual < value,
            "lte": actual <= value,
        }[op]
    )


def in_choices(actual: Any, choices: Any) -> bool:
    return actual is not None and actual in choices


def _fold(text: str) -> str:
    """Lower-case A-Z only, as SQLite's LIKE does."""
    return text.translate(_ASCII_LOWER)


_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def compare_text(op: str, actual: Any, value: Any) -> bool:
    if op in ("ne", "not_in", "is_empty"):
        return not compare_text(
            {"ne": "eq", "not_in": "in", "is_empty": "is_set"}[op], actual, value
        )
    if not isinstance(actual, str):
        return False
    if op == "eq":
        return actual == value
    if op == "in":
        return actual in value
    if op == "contains":
        return _fold(value) in _fold(actual)
    if op == "starts_with":
        return _fold(actual).startswith(_fold(value))
    if op == "is_set":
        return actual != ""
    raise AssertionError(op)


def compare_date(
    op: str, actual: Any, value: Any, *, as_of: dt.datetime, is_date_only: bool
) -> bool:
    if actual is None:
        return False
    if is_date_only:
        today = local_date(as_of)
        if op == "within_last_days":
            return bool(today - dt.timedelta(days=value) < actual <= today)
        if op == "more_than_days_ago":
            return bool(actual <= today - dt.timedelta(days=value))
        day = actual
    else:
        if op == "within_last_days":
            return bool(as_of - dt.timedelta(days=value) < actual <= as_of)
        if op == "more_than_days_ago":
            return bool(actual <= as_of - dt.timedelta(days=value))
        day = local_date(actual)
    if op == "before":
        return bool(day < value)
    if op == "after":
        return bool(day > value)
    if op == "between":
        return bool(value[0] <= day <= value[1])
    raise AssertionError(op)


def compare_json(op: str, actual: Any, value: Any, value_kind: str | None) -> bool:
    """An op on a JSON value: it holds only for a value of the kind the rule's value has."""
    if op in ("ne", "not_in", "is_empty"):
        positive = {"ne": "eq", "not_in": "in", "is_empty": "is_set"}[op]
        return not compare_json(positive, actual, value, value_kind)
    if op == "is_set":
        return actual is not MISSING and actual is not None and actual != ""
    if op in ("is_true", "is_false"):
        return isinstance(actual, bool) and actual is (op == "is_true")
    if value_kind == BOOL_VALUE:
        return isinstance(actual, bool) and actual is value
    if value_kind == NUMBER_VALUE:
        if isinstance(actual, bool) or not isinstance(actual, int | float):
            return False
        return compare_number(op, float(actual), value)
    assert value_kind == TEXT_VALUE
    return compare_text(op, actual if isinstance(actual, str) else None, value)


# -- nodes


def evaluate(node: Node, customer: CustomerData, *, as_of: dt.datetime) -> bool:
    """Whether a customer matches a (parsed) rule tree as of a time."""
    if isinstance(node, GroupNode):
        results = (evaluate(child, customer, as_of=as_of) for child in node.children)
        return all(results) if node.kind == "all" else any(results)
    if isinstance(node, NotNode):
        return not evaluate(node.child, customer, as_of=as_of)
    if isinstance(node, FieldNode):
        return evaluate_field(node, customer, as_of=as_of)
    if isinstance(node, TagNode):
        return (node.name in customer.tags) is node.is_present
    if isinstance(node, EventNode):
        return compare_number(
            node.count.op, len(matched_events(node, customer, as_of=as_of)), node.count.value
        )
    assert isinstance(node, SegmentNode)
    if node.definition is not None:
        return evaluate(node.definition, customer, as_of=as_of)
    return node.segment_id in customer.static_segments


def evaluate_field(node: FieldNode, customer: CustomerData, *, as_of: dt.datetime) -> bool:
    spec = node.field
    actual = field_value(spec, customer, as_of)
    if spec.type == NUMBER:
        if isinstance(actual, int) and not isinstance(actual, bool):
            actual = Decimal(actual) if not spec.is_integer else actual
        return compare_number(node.op, actual, node.value)
    if spec.type == TEXT:
        return compare_text(node.op, actual, node.value)
    if spec.type == DATE:
        return compare_date(
            node.op, actual, node.value, as_of=as_of, is_date_only=spec.is_date_only
        )
    if spec.type == BOOL:
        return actual is (node.op == "is_true")
    if spec.type == CHOICE:
        is_in = in_choices(actual, node.value)
        return is_in if node.op == "in" else not is_in
    assert spec.type == ATTRIBUTE
    return compare_json(node.op, actual, node.value, node.value_kind)


def _properties_match(properties: Any, conditions: tuple[PropertyCondition, ...]) -> bool:
    for condition in conditions:
        actual = properties.get(condition.key, MISSING) if isinstance(properties, dict) else MISSING
        if not compare_json(condition.op, actual, condition.value, condition.value_kind):
            return False
    return True


def _is_followed(
    event: EventData, follow_up: FollowUp, customer: CustomerData, as_of: dt.datetime
) -> bool:
    return any(
        other.name == follow_up.name
        and event.occurred_at < other.occurred_at <= event.occurred_at + follow_up.window
        and other.occurred_at <= as_of
        and _properties_match(other.properties, follow_up.where)
        for other in customer.events
    )


def matched_events(
    node: EventNode, customer: CustomerData, *, as_of: dt.datetime, with_follow_ups: bool = True
) -> list[EventData]:
    """The customer's events an event leaf counts."""
    matched = []
    for event in customer.events:
        if event.name != node.name or event.occurred_at > as_of:
            continue
        if node.window is not None and event.occurred_at <= as_of - node.window:
            continue
        if not _properties_match(event.properties, node.where):
            continue
        if with_follow_ups:
            if node.followed_by is not None and not _is_followed(
                event, node.followed_by, customer, as_of
            ):
                continue
            if node.not_followed_by is not None and _is_followed(
                event, node.not_followed_by, customer, as_of
            ):
                continue
        matched.append(event)
    return matched


def matching_customer_ids(
    node: Node, customers: Iterable[CustomerData], *, as_of: dt.datetime
) -> set[int]:
    return {customer.id for customer in customers if evaluate(node, customer, as_of=as_of)}
