from __future__ import annotations

import datetime as dt
from decimal import Decimal
from itertools import count
from typing import Any

import pytest
from django.db import transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from customers.models import Customer, CustomerMetrics, CustomerTag, Event, Tag
from loyalty.models import Membership, Tier
from segments.rules import compile_rules, list_fields, parse_rules, validate_rules
from segments.rules.evaluate import load_customers, matching_customer_ids
from tests.factories import SHANGHAI

AS_OF = dt.datetime(2025, 6, 15, 12, 0, tzinfo=SHANGHAI)
TODAY = AS_OF.date()
# Offsets from AS_OF in seconds, chosen to sit on the edges the rules care about: Shanghai
# midnight (-12 h), whole days and hours before AS_OF, one second either side, after AS_OF.
OFFSETS = [
    0,
    -1,
    -3_600,
    -43_200,
    -43_201,
    -86_399,
    -86_400,
    -86_401,
    -90_000,
    -172_800,
    -604_799,
    -604_800,
    -604_801,
    -7_776_000,
    3_600,
]
MOMENTS = [AS_OF + dt.timedelta(seconds=offset) for offset in OFFSETS]
DATES = [TODAY, TODAY - dt.timedelta(days=1), TODAY - dt.timedelta(days=7), dt.date(2025, 3, 17)]
BIRTH_DATES = [
    dt.date(1995, 6, 15),
    dt.date(1995, 6, 16),
    dt.date(1995, 6, 14),
    dt.date(2000, 2, 29),
    dt.date(2001, 3, 1),
]
TEXTS = ["上海", "北京", "", "Shanghai", "sh_%", "SH", "a\\b"]
TEXT_VALUES = ["上海", "北京", "", "Shanghai", "sh", "SH", "_", "%", "海", "a\\", "\\b"]
MONEY = [Decimal("0"), Decimal("99.50"), Decimal("100"), Decimal("320"), Decimal("500")]
TAGS = ["高价值用户", "沉睡", "VIP"]
EVENT_NAMES = ["view_product", "add_to_cart", "order"]
CATEGORIES = ["美妆", "服装", "Beauty"]
JSON_VALUES = [0, 1, 2.5, 3, -1, "gold", "", "Gold", True, False, None, [1], {"a": 1}]
TIER_CODES = ["normal", "silver", "gold", "diamond"]
VALUE_TIERS = ["high", "potential", "low", "unclassified"]
STAGES = ["new", "active", "silent", "lapsed", "prospect"]
SILENT_LEVELS = ["", "light", "medium", "heavy"]

serial = count()

# -- data


def maybe(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(st.none(), strategy)


attributes = st.dictionaries(
    st.sampled_from(["level", "src", "flag"]), st.sampled_from(JSON_VALUES), max_size=3
)
properties = st.dictionaries(
    st.sampled_from(["category", "price"]),
    st.one_of(st.sampled_from(CATEGORIES), st.sampled_from([10, 99.5, "10", True])),
    max_size=2,
)
metrics = st.fixed_dictionaries(
    {
        "orders_count": st.integers(0, 5),
        "spend_total": st.sampled_from(MONEY),
        "orders_90d": st.integers(0, 3),
        "spend_90d": st.sampled_from(MONEY),
        "avg_order_value": maybe(st.sampled_from(MONEY)),
        "first_order_at": maybe(st.sampled_from(MOMENTS)),
        "last_order_at": maybe(st.sampled_from(MOMENTS)),
        "rfm_r": maybe(st.integers(1, 5)),
        "value_tier": st.sampled_from(VALUE_TIERS),
        "lifecycle_stage": st.sampled_from(STAGES),
        "silent_level": st.sampled_from(SILENT_LEVELS),
    }
)
customers = st.lists(
    st.fixed_dictionaries(
        {
            "name": st.sampled_from(["王芳", "李雷", "Anna", "anna_%"]),
            "city": st.sampled_from(TEXTS),
            "channel": st.sampled_from(["app", "web", "other"]),
            "gender": st.sampled_from(["f", "m", "u"]),
            "birth_date": maybe(st.sampled_from(BIRTH_DATES)),
            "registered_at": st.sampled_from(MOMENTS),
            "last_seen_at": maybe(st.sampled_from(MOMENTS)),
            "phone": st.sampled_from(["", "+8613800000000"]),
            "sms_opt_in": st.booleans(),
            "unsubscribed_at": maybe(st.sampled_from(MOMENTS)),
            "attributes": attributes,
            "metrics": maybe(metrics),
            "membership": maybe(
                st.tuples(
                    st.sampled_from(TIER_CODES), st.integers(0, 2).map(lambda i: [0, 100, 1000][i])
                )
            ),
            "tags": st.sets(st.sampled_from(TAGS), max_size=2),
            "events": st.lists(
                st.tuples(st.sampled_from(EVENT_NAMES), st.sampled_from(MOMENTS), properties),
                max_size=6,
            ),
        }
    ),
    max_size=4,
)


def base_row(i: int) -> dict[str, Any]:
    """Customer i of a fixed population that puts every boundary value in front of every rule,
    so that the random customers only have to add variety."""

    def pick(values: list[Any], shift: int = 0) -> Any:
        return values[(i + shift) % len(values)]

    return {
        "name": pick(["王芳", "李雷", "Anna", "anna_%"]),
        "city": pick(TEXTS),
        "channel": pick(["app", "web", "other"]),
        "gender": pick(["f", "m", "u"]),
        "birth_date": pick([*BIRTH_DATES, None]),
        "registered_at": pick(MOMENTS),
        "last_seen_at": pick([*MOMENTS, None], 3),
        "phone": pick(["", "+8613800000000"]),
        "sms_opt_in": i % 2 == 0,
        "unsubscribed_at": pick([None, *MOMENTS], 5),
        "attributes": {"level": pick(JSON_VALUES), "src": pick(JSON_VALUES, 5)} if i % 4 else {},
        "metrics": None
        if i % 5 == 4
        else {
            "orders_count": i % 6,
            "spend_total": pick(MONEY),
            "orders_90d": i % 4,
            "spend_90d": pick(MONEY, 2),
            "avg_order_value": pick([*MONEY, None], 1),
            "first_order_at": pick([*MOMENTS, None], 7),
            "last_order_at": pick([*MOMENTS, None]),
            "rfm_r": pick([1, 2, 3, 4, 5, None]),
            "value_tier": pick(VALUE_TIERS),
            "lifecycle_stage": pick(STAGES),
            "silent_level": pick(SILENT_LEVELS),
        },
        "membership": None if i % 3 == 2 else (pick(TIER_CODES), pick([0, 100, 1000])),
        "tags": {pick(TAGS)} if i % 3 else set(),
        "events": [
            (pick(EVENT_NAMES), pick(MOMENTS), {"category": pick(CATEGORIES)}),
            (pick(EVENT_NAMES, 1), pick(MOMENTS, 4), {"price": pick([10, 99.5, "10"])}),
        ],
    }


BASE_ROWS = [base_row(i) for i in range(len(MOMENTS) + 1)]


def store(rows: list[dict[str, Any]]) -> None:
    tiers = {tier.code: tier for tier in Tier.objects.all()}
    tags = {name: Tag.objects.get_or_create(name=name)[0] for name in TAGS}
    for row in rows:
        number = next(serial)
        customer = Customer.objects.create(
            external_id=f"P{number}",
            name=row["name"],
            city=row["city"],
            channel=row["channel"],
            gender=row["gender"],
            birth_date=row["birth_date"],
            registered_at=row["registered_at"],
            last_seen_at=row["last_seen_at"],
            phone=row["phone"],
            sms_opt_in=row["sms_opt_in"],
            unsubscribed_at=row["unsubscribed_at"],
            attributes=row["attributes"],
        )
        if row["metrics"] is not None:
            CustomerMetrics.objects.create(
                customer=customer, computed_as_of=AS_OF, **row["metrics"]
            )
        if row["membership"] is not None:
            code, points = row["membership"]
            Membership.objects.create(
                customer=customer,
                tier=tiers[code],
                tier_since=AS_OF,
                joined_at=AS_OF,
                points_balance=points,
            )
        for name in row["tags"]:
            CustomerTag.objects.create(customer=customer, tag=tags[name])
        for position, (name, occurred_at, props) in enumerate(row["events"]):
            Event.objects.create(
                event_id=f"P{number}-{position}",
                customer=customer,
                name=name,
                occurred_at=occurred_at,
                properties=props,
            )


# -- trees


def iso(day: dt.date) -> str:
    return day.isoformat()


def pair(values: list[Any]) -> st.SearchStrategy[list[Any]]:
    return st.lists(st.sampled_from(values), min_size=2, max_size=2).map(sorted)


NUMBER_DOMAINS: dict[str, list[Any]] = {
    "age": [0, 24, 25, 29, 30, 31],
    "days_since_last_order": [-1, 0, 1, 2, 7, 90],
    "points_balance": [0, 100, 1000],
    "rfm_r": [1, 3, 5],
    "spend_total": [0, 99.5, 100, 320, 500],
    "spend_90d": [0, 99.5, 100, 320, 500],
    "avg_order_value": [0, 99.5, 100, 320, 500],
}


def field_leaf(key: str) -> st.SearchStrategy[dict[str, Any]]:
    spec = next(spec for spec in list_fields() if spec.key == key)
    ops = st.sampled_from(spec.ops)

    def with_value(op: str) -> st.SearchStrategy[dict[str, Any]]:
        node = {"field": key, "op": op}
        if spec.type == "number":
            domain = NUMBER_DOMAINS.get(key, [0, 1, 2, 3, 5])
            value = pair(domain) if op == "between" else st.sampled_from(domain)
        elif spec.type == "text":
            if op in ("is_set", "is_empty"):
                return st.just(node)
            value = (
                st.lists(st.sampled_from(TEXT_VALUES), min_size=1, max_size=3)
                if op in ("in", "not_in")
                else st.sampled_from(TEXT_VALUES)
            )
        elif spec.type == "date":
            if op in ("within_last_days", "more_than_days_ago"):
                value = st.sampled_from([1, 2, 7, 90, 10_000, 11_000])
            else:
                dates = [iso(day) for day in [*DATES, *BIRTH_DATES]]
                value = pair(dates) if op == "between" else st.sampled_from(dates)
        elif spec.type == "bool":
            return st.just(node)
        else:
            choices = (
                TIER_CODES
                if key == "tier"
                else [choice for choice, _label in spec.choice_options()]
            )
            value = st.lists(st.sampled_from(choices), min_size=1, max_size=3)
        return value.map(lambda v: {**node, "value": v})

    return ops.flatmap(with_value)


def attribute_leaf() -> st.SearchStrategy[dict[str, Any]]:
    key = st.sampled_from(["attr.level", "attr.src", "attr.flag", "attr.nothing"])
    numbers = [0, 1, 2.5, 3, -1]
    texts = ["gold", "", "Gold", "go", "G"]
    conditions = st.one_of(
        st.tuples(st.sampled_from(["eq", "ne"]), st.sampled_from([*numbers, *texts, True, False])),
        st.tuples(st.sampled_from(["gt", "gte", "lt", "lte"]), st.sampled_from(numbers)),
        st.tuples(st.just("between"), pair(numbers)),
        st.tuples(
            st.sampled_from(["in", "not_in"]),
            st.one_of(
                st.lists(st.sampled_from(numbers), min_size=1, max_size=3),
                st.lists(st.sampled_from(texts), min_size=1, max_size=3),
            ),
        ),
        st.tuples(st.sampled_from(["contains", "starts_with"]), st.sampled_from(texts)),
        st.tuples(st.sampled_from(["is_set", "is_empty", "is_true", "is_false"]), st.none()),
    )

    def build(key_and_condition: tuple[str, tuple[str, Any]]) -> dict[str, Any]:
        name, (op, value) = key_and_condition
        node: dict[str, Any] = {"field": name, "op": op}
        if value is not None:
            node["value"] = value
        return node

    return st.tuples(key, conditions).map(build)


where = st.dictionaries(
    st.sampled_from(["category", "price"]),
    st.one_of(
        st.sampled_from(CATEGORIES),
        st.sampled_from([10, 99.5]),
        st.builds(
            lambda v: {"op": "in", "value": v},
            st.lists(st.sampled_from(CATEGORIES), min_size=1, max_size=2),
        ),
        st.builds(lambda v: {"op": "gt", "value": v}, st.sampled_from([0, 10, 50])),
        st.sampled_from([{"op": "is_set"}, {"op": "is_empty"}, {"op": "ne", "value": "美妆"}]),
    ),
    max_size=2,
)
window: st.SearchStrategy[dict[str, int]] = st.one_of(
    st.just({}),
    st.sampled_from([1, 2, 7]).map(lambda days: {"within_days": days}),
    st.sampled_from([1, 24, 25, 48]).map(lambda hours: {"within_hours": hours}),
)
count_condition = st.one_of(
    st.just({}),
    st.tuples(st.sampled_from(["eq", "ne", "gt", "gte", "lt", "lte"]), st.integers(0, 3)).map(
        lambda c: {"count": {"op": c[0], "value": c[1]}}
    ),
    pair([0, 1, 2, 3]).map(lambda v: {"count": {"op": "between", "value": v}}),
)
follow_up = st.builds(
    lambda name, hours, where_: {
        "event": name,
        "within_hours": hours,
        **({"where": where_} if where_ else {}),
    },
    st.sampled_from(EVENT_NAMES),
    st.sampled_from([1, 24, 25]),
    where,
)
sequence = st.one_of(
    st.just({}),
    follow_up.map(lambda f: {"followed_by": f}),
    follow_up.map(lambda f: {"not_followed_by": f}),
)
event_leaf = st.builds(
    lambda name, w, where_, c, s: {
        "event": name,
        **w,
        **({"where": where_} if where_ else {}),
        **c,
        **s,
    },
    st.sampled_from(EVENT_NAMES),
    window,
    where,
    count_condition,
    sequence,
)
tag_leaf = st.builds(
    lambda name, op: {"tag": name, **({"op": op} if op else {})},
    st.sampled_from([*TAGS, "没有"]),
    st.sampled_from([None, "present", "absent"]),
)
FIELD_KEYS = [spec.key for spec in list_fields()]
leaf = st.one_of(
    st.sampled_from(FIELD_KEYS).flatmap(field_leaf),
    attribute_leaf(),
    tag_leaf,
    event_leaf,
)
trees = st.recursive(
    leaf,
    lambda children: st.one_of(
        st.lists(children, max_size=3).map(lambda c: {"all": c}),
        st.lists(children, max_size=3).map(lambda c: {"any": c}),
        children.map(lambda c: {"not": c}),
    ),
    max_leaves=6,
)


class _Rollback(Exception):
    pass


def compare(
    rows: list[dict[str, Any]], rule_trees: list[dict[str, Any]], as_of: dt.datetime
) -> None:
    try:
        with transaction.atomic():
            store(BASE_ROWS + rows)
            snapshot = load_customers()
            for tree in rule_trees:
                assert validate_rules(tree) == [], tree
                compiled = set(compile_rules(tree, as_of=as_of).values_list("pk", flat=True))
                expected = matching_customer_ids(parse_rules(tree), snapshot, as_of=as_of)
                assert compiled == expected, tree
            raise _Rollback
    except _Rollback:
        pass


SLOW_DATA = [HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large]
AS_OFS = st.sampled_from([AS_OF, AS_OF - dt.timedelta(hours=12), AS_OF + dt.timedelta(seconds=1)])
# One leaf, or its negation: "not" must be the exact complement, missing values included.
field_leaves = st.one_of(st.sampled_from(FIELD_KEYS).flatmap(field_leaf), attribute_leaf()).flatmap(
    lambda node: st.sampled_from([node, {"not": node}])
)


@pytest.mark.django_db
@settings(max_examples=120, deadline=None, suppress_health_check=SLOW_DATA)
@given(rows=customers, rule_trees=st.lists(field_leaves, min_size=10, max_size=25), as_of=AS_OFS)
def test_every_field_op_agrees_with_the_python_evaluator_on_random_data(
    rows: list[dict[str, Any]], rule_trees: list[dict[str, Any]], as_of: dt.datetime
) -> None:
    compare(rows, rule_trees, as_of)


@pytest.mark.django_db
@settings(max_examples=120, deadline=None, suppress_health_check=SLOW_DATA)
@given(
    rows=customers,
    rule_trees=st.lists(
        st.one_of(event_leaf, tag_leaf).flatmap(lambda n: st.sampled_from([n, {"not": n}])),
        min_size=5,
        max_size=15,
    ),
    as_of=AS_OFS,
)
def test_event_counts_windows_sequences_and_tags_agree_with_the_python_evaluator(
    rows: list[dict[str, Any]], rule_trees: list[dict[str, Any]], as_of: dt.datetime
) -> None:
    compare(rows, rule_trees, as_of)


@pytest.mark.django_db
@settings(max_examples=100, deadline=None, suppress_health_check=SLOW_DATA)
@given(rows=customers, rule_trees=st.lists(trees, min_size=1, max_size=5), as_of=AS_OFS)
def test_random_nested_trees_agree_with_the_python_evaluator(
    rows: list[dict[str, Any]], rule_trees: list[dict[str, Any]], as_of: dt.datetime
) -> None:
    compare(rows, rule_trees, as_of)
